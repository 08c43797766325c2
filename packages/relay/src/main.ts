import { Command, Options } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Duration, Effect, Layer, Option, Redacted } from "effect"
import { assertDevModeAllowed, loadOrCreateDevSecret } from "./DevSecret.js"
import { logFormatConfig, loggerLayer } from "./Logging.js"
import { directoryLayer, relayLayer } from "./Relay.js"
import { authSettingsOf, RelayConfig, settings, type AuthSettings } from "./RelayConfig.js"
import { mintToken } from "./Token.js"

const withEnv = <A>(options: Options.Options<A>, config: Config.Config<A>, description: string) =>
  options.pipe(Options.withFallbackConfig(config), Options.withDescription(description))

const logFormat = withEnv(Options.choice("log-format", ["json", "pretty"]), logFormatConfig, "Log format (env LOG_FORMAT).")
const serveOptions = {
  port: withEnv(Options.integer("port"), settings.port, "Port to listen on (env PORT, default 8080)."),
  bindHost: withEnv(Options.text("bind"), settings.bindHost, "Address to bind (env BIND_HOST, default 0.0.0.0)."),
  region: withEnv(Options.text("region"), settings.region, "Region of this relay (env REGION, then FLY_REGION; default local)."),
  machineId: withEnv(Options.text("machine-id"), settings.machineId, "Machine id of this relay (env MACHINE_ID, then FLY_MACHINE_ID; default the hostname)."),
  authSecret: withEnv(Options.optional(Options.redacted("auth-secret")), settings.authSecret, "HS256 secret for tokens (env RELAY_AUTH_SECRET)."),
  jwksUrl: withEnv(Options.optional(Options.text("jwks-url")), settings.jwksUrl, "JWKS URL to verify tokens with instead of a secret (env RELAY_AUTH_JWKS_URL)."),
  issuer: withEnv(Options.optional(Options.text("issuer")), settings.issuer, "Required token issuer, when set (env RELAY_AUTH_ISSUER)."),
  audience: withEnv(Options.optional(Options.text("audience")), settings.audience, "Required token audience, when set (env RELAY_AUTH_AUDIENCE)."),
  maxBodyBytes: withEnv(Options.integer("max-body-bytes"), settings.maxBodyBytes, "Largest request/response body carried, bytes (env MAX_BODY_BYTES, default 10 MiB)."),
  pingIntervalMs: withEnv(Options.integer("ping-interval-ms"), settings.pingIntervalMs, "Ping every host this often (env PING_INTERVAL_MS, default 30000)."),
  pingMaxMissed: withEnv(Options.integer("ping-max-missed"), settings.pingMaxMissed, "Missed pongs before close 1001 (env PING_MAX_MISSED, default 3)."),
  requestTimeoutMs: withEnv(Options.integer("request-timeout-ms"), settings.requestTimeoutMs, "Answer 504 when a host takes longer (env REQUEST_TIMEOUT_MS, default 30000)."),
  maxPendingPerTunnel: withEnv(Options.integer("max-pending"), settings.maxPendingPerTunnel, "Requests in flight per tunnel before 503 too_many_pending (env MAX_PENDING_PER_TUNNEL, default 1000)."),
  drainFlushMs: withEnv(Options.integer("drain-flush-ms"), settings.drainFlushMs, "On drain, wait this long for each host to close after the drain frame before closing 4001 (env DRAIN_FLUSH_MS, default 500)."),
  redisUrl: withEnv(Options.optional(Options.redacted("redis-url")), settings.redisUrl, "Redis for the shared directory (env REDIS_URL); without it the directory is in memory (a single relay)."),
  redisKeyPrefix: withEnv(Options.text("redis-key-prefix"), settings.redisKeyPrefix, "Prefix of the directory's Redis keys (env REDIS_KEY_PREFIX, default relay:)."),
  directoryTtlMs: withEnv(Options.integer("directory-ttl-ms"), settings.directoryTtlMs, "A directory entry lives this long without a pong (env DIRECTORY_TTL_MS, default 90000)."),
  sweepIntervalMs: withEnv(Options.integer("sweep-interval-ms"), settings.sweepIntervalMs, "Sweep expired entries and repair this relay's own this often (env SWEEP_INTERVAL_MS, default 30000)."),
  routing: withEnv(Options.choice("routing", ["proxy", "fly-replay"]), settings.routing, "How requests reach a host held by another relay (env ROUTING; default fly-replay when FLY_APP_NAME is set, else proxy)."),
  internalUrl: withEnv(Options.optional(Options.text("internal-url")), settings.internalUrl, "Where other relays reach this one (env RELAY_INTERNAL_URL; default http://<FLY_PRIVATE_IP or 127.0.0.1>:<port>)."),
  peerSecret: withEnv(Options.optional(Options.redacted("peer-secret")), settings.peerSecret, "Shared secret between relays, required to proxy (env RELAY_PEER_SECRET)."),
  drainDeadlineMs: withEnv(Options.integer("drain-deadline-ms"), settings.drainDeadlineMs, "Bound on the whole drain; past it log what is open and exit 1. Keep below the platform's kill timeout (env DRAIN_DEADLINE_MS, default 8000)."),
  logFormat
}

type ServeOptions = Command.Command.ParseConfig<typeof serveOptions>

/** Configured auth, or dev mode: a generated secret on disk, refused where production is evident. */
const resolveAuth = (o: ServeOptions) =>
  Option.match(authSettingsOf({ jwksUrl: o.jwksUrl, secret: o.authSecret, issuer: o.issuer, audience: o.audience }), {
    onSome: Effect.succeed,
    onNone: () =>
      Effect.gen(function*() {
        yield* assertDevModeAllowed
        const dev = yield* loadOrCreateDevSecret()
        yield* Effect.logWarning("relay.dev_mode").pipe(
          Effect.annotateLogs({
            secretFile: dev.file,
            created: dev.created,
            mintToken: "npx effect-relay token --org <ORG>"
          })
        )
        return { key: { _tag: "Secret", secret: dev.secret }, issuer: o.issuer, audience: o.audience } satisfies AuthSettings
      })
  })

const serve = Command.make("serve", serveOptions, (o) =>
  Effect.gen(function*() {
    const auth = yield* resolveAuth(o)
    yield* Layer.launch(
      relayLayer({ onDeadline: () => process.exit(1), exitOnSecondSignal: true }).pipe(
        Layer.provideMerge(directoryLayer),
        Layer.provide(RelayConfig.layer({
          port: o.port,
          bindHost: o.bindHost,
          region: o.region,
          machineId: o.machineId,
          auth,
          maxBodyBytes: o.maxBodyBytes,
          pingIntervalMs: o.pingIntervalMs,
          pingMaxMissed: o.pingMaxMissed,
          requestTimeoutMs: o.requestTimeoutMs,
          maxPendingPerTunnel: o.maxPendingPerTunnel,
          drainFlushMs: o.drainFlushMs,
          drainDeadlineMs: o.drainDeadlineMs,
          redisUrl: o.redisUrl,
          redisKeyPrefix: o.redisKeyPrefix,
          directoryTtlMs: o.directoryTtlMs,
          sweepIntervalMs: o.sweepIntervalMs,
          routing: o.routing,
          internalUrl: o.internalUrl,
          peerSecret: o.peerSecret
        }))
      )
    ).pipe(
      // Every Layer is released by now (tunnels, server, directory connection): the process exits next.
      Effect.onExit(() => Effect.logInfo("relay.stopped"))
    )
  }).pipe(
    Effect.annotateLogs({ region: o.region, machineId: o.machineId }),
    Effect.provide(loggerLayer(o.logFormat))
  )).pipe(Command.withDescription("Run a relay. Without auth settings it runs in dev mode with a generated secret."))

const parseTtl = (text: string): Option.Option<Duration.Duration> => {
  const match = /^(\d+)\s*(s|m|h|d)$/.exec(text.trim())
  if (!match) return Option.none()
  const n = Number(match[1])
  const unit = { s: "seconds", m: "minutes", h: "hours", d: "days" }[match[2] as "s" | "m" | "h" | "d"]
  return Option.some(Duration.decode(`${n} ${unit}` as Duration.DurationInput))
}

const token = Command.make("token", {
  orgs: Options.text("org").pipe(Options.repeated, Options.withDescription("Org the token grants; repeat for several.")),
  ttl: Options.text("ttl").pipe(Options.withDefault("1h"), Options.withDescription("Lifetime: 30s, 15m, 1h, 7d (default 1h).")),
  subject: Options.text("sub").pipe(Options.optional, Options.withDescription("Subject claim.")),
  authSecret: withEnv(Options.optional(Options.redacted("auth-secret")), settings.authSecret, "HS256 secret (env RELAY_AUTH_SECRET; else the dev secret).")
}, (o) =>
  Effect.gen(function*() {
    if (o.orgs.length === 0) return yield* Effect.fail(new Error("give at least one --org"))
    const ttl = yield* Option.match(parseTtl(o.ttl), {
      onNone: () => Effect.fail(new Error(`--ttl ${o.ttl}: use a number and s, m, h or d`)),
      onSome: Effect.succeed
    })
    const secret: Redacted.Redacted<string> = Option.isSome(o.authSecret)
      ? o.authSecret.value
      : yield* assertDevModeAllowed.pipe(Effect.zipRight(loadOrCreateDevSecret()), Effect.map((dev) => dev.secret))
    const jwt = yield* mintToken(secret, {
      orgs: o.orgs,
      ttl,
      ...(Option.isSome(o.subject) ? { subject: o.subject.value } : {})
    })
    yield* Console.log(jwt)
  })).pipe(Command.withDescription("Print a token signed with the relay's HS256 secret."))

const root = Command.make("effect-relay").pipe(
  Command.withDescription("effect-relay: a tunnel relay that drains instead of dying."),
  Command.withSubcommands([serve, token])
)

const cli = Command.run(root, { name: "effect-relay", version: "0.1.0" })

cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
