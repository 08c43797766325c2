/**
 * The `effect-relay-host` command: flags (each falling back to its
 * environment variable, then to the default) and the handler that runs the
 * host agent Layer until the program is interrupted.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { HostAgentLive } from "./HostAgent.js"
import { Checks, HostAgentConfigDefaults as D, HostAgentEnv } from "./HostAgentConfig.js"
import { logFormatLayer, LoggingEnv } from "./Logging.js"
import { MetricsServerChecks, MetricsServerDefaults, MetricsServerEnv, MetricsServerLive } from "./MetricsServer.js"

interface Check<A> {
  readonly message: string
  readonly validation: (a: A) => boolean
}

const checked = <A>(check: Check<A>) =>
  Options.filterMap((a: A) => check.validation(a) ? Option.some(a) : Option.none(), check.message)

const relay = Options.text("relay").pipe(
  Options.repeated,
  Options.withDescription(
    "Relay base URL (ws://, wss://, http://, https://); the tunnel is at /tunnel. Repeat it (or give RELAY_URL comma-separated) for several relays: each attempt picks one at random, and the reconnect after a drain prefers another. Env: RELAY_URL"
  ),
  Options.filterMap(
    (urls: Array<string>) => (urls.every(Checks.relayUrl.validation) ? Option.some(urls) : Option.none()),
    Checks.relayUrl.message
  )
)

/** `--relay` given once or more wins; else RELAY_URL (a repeated flag cannot fall back by itself). */
const relayUrls = (flags: ReadonlyArray<string>): Effect.Effect<string | ReadonlyArray<string>, Error> =>
  flags.length > 0
    ? Effect.succeed(flags)
    : HostAgentEnv.relayUrl.pipe(
      Effect.mapError((e) => new Error(`--relay (or RELAY_URL) is required: ${e.message}`))
    )
const hostId = Options.text("host-id").pipe(
  Options.withDescription("This host's id, {orgId}:{name}. Env: HOST_ID"),
  Options.withFallbackConfig(HostAgentEnv.hostId),
  checked(Checks.hostId)
)
const token = Options.redacted("token").pipe(
  Options.withDescription("Bearer token for the relay (prefer the env var: flags show in `ps`). Env: RELAY_TOKEN"),
  Options.withFallbackConfig(HostAgentEnv.token)
)
const target = Options.text("target").pipe(
  Options.withDescription("Local service to expose, e.g. http://127.0.0.1:3000. Env: TARGET_URL"),
  Options.withFallbackConfig(HostAgentEnv.targetUrl),
  checked(Checks.targetUrl)
)
const int = (
  name: string,
  env: string,
  fallback: typeof HostAgentEnv.watchdogMs,
  defaultValue: number,
  what: string,
  check: Check<number> = Checks.positiveInt
) =>
  Options.integer(name).pipe(
    Options.withDescription(`${what} Default ${defaultValue}. Env: ${env}`),
    Options.withFallbackConfig(fallback),
    checked(check)
  )

const metricsPort = Options.integer("metrics-port").pipe(
  Options.optional,
  Options.withDescription(
    "Serve GET /metrics (Prometheus text of the host_ metrics) and GET /health on this port (0: a free one, logged as host.metrics_listening). Default: off. Env: METRICS_PORT"
  ),
  Options.withFallbackConfig(MetricsServerEnv.port),
  Options.filterMap(
    (port) => (Option.isNone(port) || MetricsServerChecks.port.validation(port.value) ? Option.some(port) : Option.none()),
    MetricsServerChecks.port.message
  )
)
const metricsBind = Options.text("metrics-bind").pipe(
  Options.withDescription(
    `Address the metrics server binds (with --metrics-port). Default ${MetricsServerDefaults.bindHost}. Env: METRICS_BIND`
  ),
  Options.withFallbackConfig(MetricsServerEnv.bindHost)
)

export const command = Command.make(
  "effect-relay-host",
  {
    relay,
    hostId,
    token,
    target,
    connectTimeoutMs: int("connect-timeout-ms", "CONNECT_TIMEOUT_MS", HostAgentEnv.connectTimeoutMs, D.connectTimeoutMs, "Time allowed to open the tunnel (and a target WebSocket), in ms."),
    watchdogMs: int("watchdog-ms", "WATCHDOG_MS", HostAgentEnv.watchdogMs, D.watchdogMs, "Close the tunnel (4002) and reconnect after this many ms without a frame from the relay."),
    requestTimeoutMs: int("request-timeout-ms", "REQUEST_TIMEOUT_MS", HostAgentEnv.requestTimeoutMs, D.requestTimeoutMs, "Time the target may take to answer an HTTP request before a 504, in ms."),
    maxBodyBytes: int("max-body-bytes", "MAX_BODY_BYTES", HostAgentEnv.maxBodyBytes, D.maxBodyBytes, "Largest target response body forwarded (larger: 502)."),
    wsQueueFrames: int("ws-queue-frames", "WS_QUEUE_FRAMES", HostAgentEnv.wsQueueFrames, D.wsQueueFrames, "Frames a WebSocket channel may queue for the target before closing with 1013."),
    drainJitterMs: int("drain-jitter-ms", "DRAIN_JITTER_MS", HostAgentEnv.drainJitterMs, D.drainJitterMs, "After a drain, reconnect within a random delay up to this many ms.", Checks.nonNegativeInt),
    drainGraceMs: int("drain-grace-ms", "DRAIN_GRACE_MS", HostAgentEnv.drainGraceMs, D.drainGraceMs, "After a drain frame, finish in-flight requests and wait up to this many ms for the relay's 4001 close."),
    drainRetryMs: int("drain-retry-ms", "DRAIN_RETRY_MS", HostAgentEnv.drainRetryMs, D.drainRetryMs, "After a drain, retry a failed connect this often (a relay restarting in place)."),
    drainRetryWindowMs: int("drain-retry-window-ms", "DRAIN_RETRY_WINDOW_MS", HostAgentEnv.drainRetryWindowMs, D.drainRetryWindowMs, "How long after a drain the fast retry lasts before the exponential backoff takes over.", Checks.nonNegativeInt),
    backoffBaseMs: int("backoff-base-ms", "BACKOFF_BASE_MS", HostAgentEnv.backoffBaseMs, D.backoffBaseMs, "First reconnect delay in ms; doubles on each failure."),
    backoffCapMs: int("backoff-cap-ms", "BACKOFF_CAP_MS", HostAgentEnv.backoffCapMs, D.backoffCapMs, "Longest reconnect delay in ms."),
    backoffJitter: Options.float("backoff-jitter").pipe(
      Options.withDescription(`Each reconnect delay is multiplied by a random factor in [1 - jitter, 1]. Default ${D.backoffJitter}. Env: BACKOFF_JITTER`),
      Options.withFallbackConfig(HostAgentEnv.backoffJitter),
      checked(Checks.fraction)
    ),
    resetOnDrain: Options.boolean("reset-on-drain", { negationNames: ["no-reset-on-drain"] }).pipe(
      Options.withDescription(
        `A drain resets the backoff and reconnects at once (within the drain jitter, then the fast retry). --no-reset-on-drain gives the behaviour from before drains were handled: a drain climbs the backoff like any other failure; only for measuring the difference. Default ${D.resetOnDrain}. Env: RESET_ON_DRAIN`
      ),
      Options.withFallbackConfig(HostAgentEnv.resetOnDrain)
    ),
    metricsPort,
    metricsBind,
    logFormat: Options.choice("log-format", ["json", "pretty"]).pipe(
      Options.withDescription("json (one event per line) or pretty. Default json. Env: LOG_FORMAT"),
      Options.withFallbackConfig(LoggingEnv.format)
    )
  },
  ({ logFormat, metricsBind, metricsPort, relay, target, ...config }) =>
    relayUrls(relay).pipe(
      Effect.flatMap((relayUrl) => {
        const agent = HostAgentLive({ ...config, relayUrl, targetUrl: target })
        return Layer.launch(Option.match(metricsPort, {
          onNone: () => agent,
          onSome: (port) => MetricsServerLive({ port, bindHost: metricsBind }).pipe(Layer.provideMerge(agent))
        }))
      }),
      Effect.tapErrorCause((cause) => Effect.logFatal("host.failed", cause)),
      Effect.annotateLogs({ hostId: config.hostId }),
      Effect.provide(logFormatLayer(logFormat))
    )
).pipe(
  Command.withDescription(
    "Dials out to an effect-relay relay over a WebSocket tunnel and forwards its HTTP requests and WebSocket channels to a local service. Reconnects forever; SIGINT/SIGTERM closes the tunnel (1000) and exits. The minimum log level is --log-level, else LOG_LEVEL, else info."
  )
)

/** Runs the command on `process.argv`-shaped arguments. */
export const run = Command.run(command, { name: "effect-relay-host", version: "0.1.0" })
