import { decodeHostId } from "@effect-relay/protocol"
import { Config, Either, Redacted } from "effect"

/**
 * What a host agent needs: where the relay is, who this host is, the token
 * it proves that with, and the local service it exposes. Everything else
 * has a default that works on a laptop.
 */
export interface HostAgentConfig {
  /**
   * The relay's base URL (ws://, wss://, http:// or https://); the tunnel is at `/tunnel` under it.
   * Several (an array, or comma-separated): each attempt picks one at random, and the reconnect
   * right after a drain prefers another one than the relay that drained.
   */
  readonly relayUrl: string | ReadonlyArray<string>
  /** `{orgId}:{name}`. */
  readonly hostId: string
  /** Bearer token for the relay; sent as `Authorization: Bearer ...`, never logged. */
  readonly token: string | Redacted.Redacted<string>
  /** The local service requests are forwarded to (http:// or https://). */
  readonly targetUrl: string
  /** How long to wait for the relay to accept the tunnel (also the target WebSocket handshake timeout). */
  readonly connectTimeoutMs?: number
  /** Close the tunnel with 4002 and reconnect after this long without any frame from the relay. */
  readonly watchdogMs?: number
  /** How long the target may take to answer one HTTP request (then 504). */
  readonly requestTimeoutMs?: number
  /** Largest target response body forwarded (then 502). */
  readonly maxBodyBytes?: number
  /** Frames a WebSocket channel may queue towards the target before it is closed with 1013. */
  readonly wsQueueFrames?: number
  /** After a drain, reconnect after a random delay in [0, drainJitterMs]. */
  readonly drainJitterMs?: number
  /**
   * After a drain frame, keep serving in-flight requests and wait this long at most for the
   * relay's 4001 close before closing the tunnel ourselves.
   */
  readonly drainGraceMs?: number
  /** After a drain, a refused or failed connect is retried this often (a relay restarting in place)... */
  readonly drainRetryMs?: number
  /** ...for this long after the drain; then the exponential backoff takes over. */
  readonly drainRetryWindowMs?: number
  /** First reconnect delay; each further one doubles, up to `backoffCapMs`. */
  readonly backoffBaseMs?: number
  /** Longest reconnect delay. */
  readonly backoffCapMs?: number
  /** Each reconnect delay is multiplied by a random factor in [1 - backoffJitter, 1]. */
  readonly backoffJitter?: number
  /**
   * Whether a drain resets the backoff (default true). False gives the behaviour from before
   * drains were handled: a drain is one more failure, the delay keeps climbing, no drain jitter
   * and no fast retry. Only for measuring the difference (`npm run gameday`).
   */
  readonly resetOnDrain?: boolean
}

/** A config with every default filled in. */
export interface ResolvedHostAgentConfig {
  readonly relayUrls: ReadonlyArray<string>
  readonly hostId: string
  readonly token: Redacted.Redacted<string>
  readonly targetUrl: string
  readonly connectTimeoutMs: number
  readonly watchdogMs: number
  readonly requestTimeoutMs: number
  readonly maxBodyBytes: number
  readonly wsQueueFrames: number
  readonly drainJitterMs: number
  readonly drainGraceMs: number
  readonly drainRetryMs: number
  readonly drainRetryWindowMs: number
  readonly backoffBaseMs: number
  readonly backoffCapMs: number
  readonly backoffJitter: number
  readonly resetOnDrain: boolean
}

export const HostAgentConfigDefaults = {
  connectTimeoutMs: 20_000,
  watchdogMs: 75_000,
  requestTimeoutMs: 30_000,
  maxBodyBytes: 10 * 1024 * 1024,
  wsQueueFrames: 256,
  drainJitterMs: 250,
  drainGraceMs: 2_000,
  drainRetryMs: 250,
  drainRetryWindowMs: 15_000,
  backoffBaseMs: 1_000,
  backoffCapMs: 5_000,
  backoffJitter: 0.2,
  resetOnDrain: true
} as const

export const resolveHostAgentConfig = (config: HostAgentConfig): ResolvedHostAgentConfig => ({
  relayUrls: splitRelayUrls(config.relayUrl),
  hostId: config.hostId,
  token: Redacted.isRedacted(config.token) ? config.token : Redacted.make(config.token),
  targetUrl: config.targetUrl,
  connectTimeoutMs: config.connectTimeoutMs ?? HostAgentConfigDefaults.connectTimeoutMs,
  watchdogMs: config.watchdogMs ?? HostAgentConfigDefaults.watchdogMs,
  requestTimeoutMs: config.requestTimeoutMs ?? HostAgentConfigDefaults.requestTimeoutMs,
  maxBodyBytes: config.maxBodyBytes ?? HostAgentConfigDefaults.maxBodyBytes,
  wsQueueFrames: config.wsQueueFrames ?? HostAgentConfigDefaults.wsQueueFrames,
  drainJitterMs: config.drainJitterMs ?? HostAgentConfigDefaults.drainJitterMs,
  drainGraceMs: config.drainGraceMs ?? HostAgentConfigDefaults.drainGraceMs,
  drainRetryMs: config.drainRetryMs ?? HostAgentConfigDefaults.drainRetryMs,
  drainRetryWindowMs: config.drainRetryWindowMs ?? HostAgentConfigDefaults.drainRetryWindowMs,
  backoffBaseMs: config.backoffBaseMs ?? HostAgentConfigDefaults.backoffBaseMs,
  backoffCapMs: config.backoffCapMs ?? HostAgentConfigDefaults.backoffCapMs,
  backoffJitter: config.backoffJitter ?? HostAgentConfigDefaults.backoffJitter,
  resetOnDrain: config.resetOnDrain ?? HostAgentConfigDefaults.resetOnDrain
})

/** Relay URLs from an array and/or comma-separated strings, trimmed, empty ones dropped. */
export const splitRelayUrls = (value: string | ReadonlyArray<string>): ReadonlyArray<string> =>
  (typeof value === "string" ? [value] : value).flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v.length > 0)

const hasScheme = (schemes: ReadonlyArray<string>) => (value: string) => {
  try {
    return schemes.includes(new URL(value).protocol)
  } catch {
    return false
  }
}

/** Checks shared by the environment loader and the CLI flags. */
export const Checks = {
  relayUrl: {
    message: "must be one or more (comma-separated) ws://, wss://, http:// or https:// URLs",
    validation: (value: string) => {
      const urls = splitRelayUrls(value)
      return urls.length > 0 && urls.every(hasScheme(["ws:", "wss:", "http:", "https:"]))
    }
  },
  targetUrl: { message: "must be an http:// or https:// URL", validation: hasScheme(["http:", "https:"]) },
  hostId: {
    message: "must be {orgId}:{name}, each part 1-64 of [A-Za-z0-9._-]",
    validation: (value: string) => Either.isRight(decodeHostId(value))
  },
  positiveInt: { message: "must be a positive integer", validation: (n: number) => Number.isInteger(n) && n > 0 },
  nonNegativeInt: { message: "must be an integer >= 0", validation: (n: number) => Number.isInteger(n) && n >= 0 },
  fraction: { message: "must be between 0 and 1", validation: (n: number) => n >= 0 && n <= 1 }
} as const

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(Config.validate(Checks.positiveInt), Config.withDefault(fallback))

const nonNegativeInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(Config.validate(Checks.nonNegativeInt), Config.withDefault(fallback))

/**
 * One `Config` per option, read from its environment variable. The CLI uses
 * them as the fallbacks of its flags; `hostAgentConfigFromEnv` combines them.
 */
export const HostAgentEnv = {
  relayUrl: Config.string("RELAY_URL").pipe(Config.validate(Checks.relayUrl)),
  hostId: Config.string("HOST_ID").pipe(Config.validate(Checks.hostId)),
  token: Config.redacted("RELAY_TOKEN"),
  targetUrl: Config.string("TARGET_URL").pipe(Config.validate(Checks.targetUrl)),
  connectTimeoutMs: positiveInt("CONNECT_TIMEOUT_MS", HostAgentConfigDefaults.connectTimeoutMs),
  watchdogMs: positiveInt("WATCHDOG_MS", HostAgentConfigDefaults.watchdogMs),
  requestTimeoutMs: positiveInt("REQUEST_TIMEOUT_MS", HostAgentConfigDefaults.requestTimeoutMs),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", HostAgentConfigDefaults.maxBodyBytes),
  wsQueueFrames: positiveInt("WS_QUEUE_FRAMES", HostAgentConfigDefaults.wsQueueFrames),
  drainJitterMs: nonNegativeInt("DRAIN_JITTER_MS", HostAgentConfigDefaults.drainJitterMs),
  drainGraceMs: positiveInt("DRAIN_GRACE_MS", HostAgentConfigDefaults.drainGraceMs),
  drainRetryMs: positiveInt("DRAIN_RETRY_MS", HostAgentConfigDefaults.drainRetryMs),
  drainRetryWindowMs: nonNegativeInt("DRAIN_RETRY_WINDOW_MS", HostAgentConfigDefaults.drainRetryWindowMs),
  backoffBaseMs: positiveInt("BACKOFF_BASE_MS", HostAgentConfigDefaults.backoffBaseMs),
  backoffCapMs: positiveInt("BACKOFF_CAP_MS", HostAgentConfigDefaults.backoffCapMs),
  backoffJitter: Config.number("BACKOFF_JITTER").pipe(
    Config.validate(Checks.fraction),
    Config.withDefault(HostAgentConfigDefaults.backoffJitter)
  ),
  resetOnDrain: Config.boolean("RESET_ON_DRAIN").pipe(Config.withDefault<boolean>(HostAgentConfigDefaults.resetOnDrain))
} as const

/** The whole config from the environment, validated, defaults filled in. */
export const hostAgentConfigFromEnv: Config.Config<ResolvedHostAgentConfig> = Config.map(
  Config.all(HostAgentEnv),
  ({ relayUrl, ...rest }) => ({ ...rest, relayUrls: splitRelayUrls(relayUrl) })
)
