import { Config, Context, Effect, Layer, Option, Redacted } from "effect"
import * as os from "node:os"

/** How this relay verifies tokens: a shared HS256 secret or a JWKS endpoint; issuer and audience checked when set. */
export interface AuthSettings {
  readonly key:
    | { readonly _tag: "Secret"; readonly secret: Redacted.Redacted<string> }
    | { readonly _tag: "Jwks"; readonly url: string }
  readonly issuer: Option.Option<string>
  readonly audience: Option.Option<string>
}

export interface RelaySettings {
  /** TCP port to listen on (0 picks a free one). */
  readonly port: number
  /** Address to bind. */
  readonly bindHost: string
  /** Region name reported by /health and used in the directory owner id. */
  readonly region: string
  /** Machine id reported by /health and used in the directory owner id. */
  readonly machineId: string
  readonly auth: AuthSettings
  /** Largest request or response body carried through a tunnel. */
  readonly maxBodyBytes: number
  readonly pingIntervalMs: number
  /** Pings without a pong before the tunnel is closed 1001. */
  readonly pingMaxMissed: number
  readonly requestTimeoutMs: number
  readonly maxPendingPerTunnel: number
  /** How long a draining tunnel waits for its host to close after the drain frame, before closing 4001. */
  readonly drainFlushMs: number
  /** Bound on the whole drain; past it the relay logs what was still open and exits 1. Keep below the platform's kill timeout. */
  readonly drainDeadlineMs: number
  /** The shared directory (Redis), when set; else the in-memory one. */
  readonly redisUrl: Option.Option<Redacted.Redacted<string>>
  readonly redisKeyPrefix: string
  /** A directory entry lives this long without a heartbeat (pong). */
  readonly directoryTtlMs: number
  /** Every relay sweeps expired entries (and repairs its own) this often. */
  readonly sweepIntervalMs: number
  /** How a request for a host held by another relay gets there. */
  readonly routing: Routing
  /** Where other relays reach this one; default http://<FLY_PRIVATE_IP or 127.0.0.1>:<port>. */
  readonly internalUrl: Option.Option<string>
  /** Shared secret proving a proxied request comes from another relay. */
  readonly peerSecret: Option.Option<Redacted.Redacted<string>>
}

export type Routing = "proxy" | "fly-replay"

/** The relay's settings as a service, so every part reads the same values. */
export class RelayConfig extends Context.Tag("effect-relay/RelayConfig")<RelayConfig, RelaySettings>() {
  static layer = (settings: RelaySettings) => Layer.succeed(RelayConfig, settings)
  /** Reads every setting from the environment (see `settings` for the names). */
  static layerFromEnv = Layer.effect(
    RelayConfig,
    Effect.gen(function*() {
      const auth = yield* authFromEnv
      if (Option.isNone(auth)) {
        return yield* Effect.dieMessage("no auth configured: set RELAY_AUTH_SECRET or RELAY_AUTH_JWKS_URL")
      }
      return yield* Config.all({
        port: settings.port,
        bindHost: settings.bindHost,
        region: settings.region,
        machineId: settings.machineId,
        maxBodyBytes: settings.maxBodyBytes,
        pingIntervalMs: settings.pingIntervalMs,
        pingMaxMissed: settings.pingMaxMissed,
        requestTimeoutMs: settings.requestTimeoutMs,
        maxPendingPerTunnel: settings.maxPendingPerTunnel,
        drainFlushMs: settings.drainFlushMs,
        drainDeadlineMs: settings.drainDeadlineMs,
        redisUrl: settings.redisUrl,
        redisKeyPrefix: settings.redisKeyPrefix,
        directoryTtlMs: settings.directoryTtlMs,
        sweepIntervalMs: settings.sweepIntervalMs,
        routing: settings.routing,
        internalUrl: settings.internalUrl,
        peerSecret: settings.peerSecret
      }).pipe(Effect.map((values) => ({ ...values, auth: auth.value })))
    })
  )
}

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `${name} must be a positive integer`, validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

/** Each setting with its environment variable and default: the CLI falls back to these. */
export const settings = {
  port: Config.integer("PORT").pipe(Config.withDefault(8080)),
  bindHost: Config.string("BIND_HOST").pipe(Config.withDefault("0.0.0.0")),
  region: Config.string("REGION").pipe(
    Config.orElse(() => Config.string("FLY_REGION")),
    Config.withDefault("local")
  ),
  machineId: Config.string("MACHINE_ID").pipe(
    Config.orElse(() => Config.string("FLY_MACHINE_ID")),
    Config.withDefault(os.hostname())
  ),
  authSecret: Config.option(Config.redacted("RELAY_AUTH_SECRET")),
  jwksUrl: Config.option(Config.string("RELAY_AUTH_JWKS_URL")),
  issuer: Config.option(Config.string("RELAY_AUTH_ISSUER")),
  audience: Config.option(Config.string("RELAY_AUTH_AUDIENCE")),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 10 * 1024 * 1024),
  pingIntervalMs: positiveInt("PING_INTERVAL_MS", 30_000),
  pingMaxMissed: positiveInt("PING_MAX_MISSED", 3),
  requestTimeoutMs: positiveInt("REQUEST_TIMEOUT_MS", 30_000),
  maxPendingPerTunnel: positiveInt("MAX_PENDING_PER_TUNNEL", 1000),
  drainFlushMs: positiveInt("DRAIN_FLUSH_MS", 500),
  drainDeadlineMs: positiveInt("DRAIN_DEADLINE_MS", 8000),
  redisUrl: Config.option(Config.redacted("REDIS_URL")),
  redisKeyPrefix: Config.string("REDIS_KEY_PREFIX").pipe(Config.withDefault("relay:")),
  directoryTtlMs: positiveInt("DIRECTORY_TTL_MS", 90_000),
  sweepIntervalMs: positiveInt("SWEEP_INTERVAL_MS", 30_000),
  routing: Config.literal("proxy", "fly-replay")("ROUTING").pipe(
    Config.orElse(() =>
      Config.option(Config.string("FLY_APP_NAME")).pipe(
        Config.map((fly): Routing => (Option.isSome(fly) ? "fly-replay" : "proxy"))
      )
    )
  ),
  internalUrl: Config.option(Config.string("RELAY_INTERNAL_URL")),
  peerSecret: Config.option(Config.redacted("RELAY_PEER_SECRET"))
} as const

/** The URL other relays use to reach this one, once its port is known. */
export const internalUrlFor = (configured: Option.Option<string>, port: number): string =>
  Option.getOrElse(configured, () => {
    const ip = process.env.FLY_PRIVATE_IP
    if (ip === undefined || ip === "") return `http://127.0.0.1:${port}`
    return ip.includes(":") ? `http://[${ip}]:${port}` : `http://${ip}:${port}`
  })

/** Which auth applies: a JWKS URL wins over a secret; neither means dev mode (decided by `serve`). */
export const authSettingsOf = (given: {
  readonly jwksUrl: Option.Option<string>
  readonly secret: Option.Option<Redacted.Redacted<string>>
  readonly issuer: Option.Option<string>
  readonly audience: Option.Option<string>
}): Option.Option<AuthSettings> => {
  const key: Option.Option<AuthSettings["key"]> = Option.isSome(given.jwksUrl)
    ? Option.some({ _tag: "Jwks", url: given.jwksUrl.value })
    : Option.map(given.secret, (secret) => ({ _tag: "Secret", secret }))
  return Option.map(key, (key): AuthSettings => ({ key, issuer: given.issuer, audience: given.audience }))
}

/** Auth from the environment (see `authSettingsOf`). */
export const authFromEnv = Effect.map(
  Config.all({ jwksUrl: settings.jwksUrl, secret: settings.authSecret, issuer: settings.issuer, audience: settings.audience }),
  authSettingsOf
)
