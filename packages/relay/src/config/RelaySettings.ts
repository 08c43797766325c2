/**
 * Every setting of the relay, each defined once: flag, environment variable, default and what it
 * does. `effect-relay serve --help`, the environment, `RelayConfig.layerFromEnv`, the tests'
 * defaults and the README's table all come from here (`npm run settings-table` prints it).
 */
import { Logging, Setting } from "@effect-relay/protocol"
import { Config, Option } from "effect"
import * as os from "node:os"

export type Routing = "proxy" | "fly-replay"

export const relaySettings = {
  port: Setting.integer({
    flag: "port",
    env: "PORT",
    default: 8080,
    check: Setting.Checks.port,
    description: "Port to listen on (0 picks a free one)."
  }),
  bindHost: Setting.text({ flag: "bind", env: "BIND_HOST", default: "0.0.0.0", description: "Address to bind (:: for every IPv4 and IPv6 address)." }),
  region: Setting.text({
    flag: "region",
    env: "REGION",
    alsoEnv: ["FLY_REGION"],
    default: "local",
    description: "Region of this relay: in /health, in every log line, and in its directory entries."
  }),
  machineId: Setting.text({
    flag: "machine-id",
    env: "MACHINE_ID",
    alsoEnv: ["FLY_MACHINE_ID"],
    default: () => os.hostname(),
    defaultText: "the hostname",
    description: "Machine id of this relay: in /health, in every log line, and in its directory entries."
  }),
  authSecret: Setting.optionalSecret({
    flag: "auth-secret",
    env: "RELAY_AUTH_SECRET",
    description: "HS256 secret that tokens are signed with. Without it (and without a JWKS URL) the relay runs in dev mode with a generated secret."
  }),
  jwksUrl: Setting.optionalText({
    flag: "jwks-url",
    env: "RELAY_AUTH_JWKS_URL",
    description: "JWKS URL to verify tokens with instead of a secret."
  }),
  issuer: Setting.optionalText({ flag: "issuer", env: "RELAY_AUTH_ISSUER", description: "Required token issuer (iss), when set." }),
  audience: Setting.optionalText({ flag: "audience", env: "RELAY_AUTH_AUDIENCE", description: "Required token audience (aud), when set." }),
  maxTokenLifetimeSeconds: Setting.integer({
    flag: "max-token-lifetime-seconds",
    env: "RELAY_AUTH_MAX_TOKEN_LIFETIME_SECONDS",
    default: 30 * 24 * 3600,
    defaultText: "2592000 (30 days)",
    description: "Longest token lifetime accepted, for hosts and for clients: exp - iat (exp - now without iat). A token without exp is refused. `effect-relay token --ttl` is held to it too."
  }),
  maxBodyBytes: Setting.integer({
    flag: "max-body-bytes",
    env: "MAX_BODY_BYTES",
    default: 10 * 1024 * 1024,
    defaultText: "10485760 (10 MiB)",
    description: "Largest request or response body carried through a tunnel (413 or 502 beyond it)."
  }),
  pingIntervalMs: Setting.integer({ flag: "ping-interval-ms", env: "PING_INTERVAL_MS", default: 30_000, description: "Ping every host this often." }),
  pingMaxMissed: Setting.integer({ flag: "ping-max-missed", env: "PING_MAX_MISSED", default: 3, description: "Pings without a pong before the tunnel is closed 1001." }),
  requestTimeoutMs: Setting.integer({
    flag: "request-timeout-ms",
    env: "REQUEST_TIMEOUT_MS",
    default: 30_000,
    description: "Answer 504 when a host takes longer than this to answer a request."
  }),
  maxPendingPerTunnel: Setting.integer({
    flag: "max-pending",
    env: "MAX_PENDING_PER_TUNNEL",
    default: 1000,
    description: "Requests in flight per tunnel; beyond it 503 too_many_pending."
  }),
  drainFlushMs: Setting.integer({
    flag: "drain-flush-ms",
    env: "DRAIN_FLUSH_MS",
    default: 500,
    description: "On drain, how long each tunnel waits for in-flight responses after the drain frame before failing the rest with 502 and closing 4001."
  }),
  drainDeadlineMs: Setting.integer({
    flag: "drain-deadline-ms",
    env: "DRAIN_DEADLINE_MS",
    default: 8000,
    description: "Bound on the whole drain; past it the relay logs what is still open and exits 1. Keep it below the platform's kill timeout."
  }),
  redisUrl: Setting.optionalSecret({
    flag: "redis-url",
    env: "REDIS_URL",
    description: "Redis for the shared directory of which relay holds which host. Without it the directory is in memory (a single relay)."
  }),
  redisKeyPrefix: Setting.text({ flag: "redis-key-prefix", env: "REDIS_KEY_PREFIX", default: "relay:", description: "Prefix of the directory's Redis keys." }),
  directoryTtlMs: Setting.integer({
    flag: "directory-ttl-ms",
    env: "DIRECTORY_TTL_MS",
    default: 90_000,
    description: "A directory entry lives this long without a heartbeat (a pong)."
  }),
  sweepIntervalMs: Setting.integer({
    flag: "sweep-interval-ms",
    env: "SWEEP_INTERVAL_MS",
    default: 30_000,
    description: "Sweep expired directory entries, and repair this relay's own, this often."
  }),
  routing: Setting.choice({
    flag: "routing",
    env: "ROUTING",
    choices: ["proxy", "fly-replay"] as const,
    default: Config.map(Config.option(Config.string("FLY_APP_NAME")), (fly): Routing => (Option.isSome(fly) ? "fly-replay" : "proxy")),
    defaultText: "fly-replay when FLY_APP_NAME is set, else proxy",
    description: "How a request reaches a host held by another relay: proxied by this relay, or replayed there by Fly's proxy."
  }),
  internalUrl: Setting.optionalText({
    flag: "internal-url",
    env: "RELAY_INTERNAL_URL",
    description: "Where other relays reach this one (default http://<FLY_PRIVATE_IP or 127.0.0.1>:<port>)."
  }),
  peerSecret: Setting.optionalSecret({
    flag: "peer-secret",
    env: "RELAY_PEER_SECRET",
    description: "Secret shared by the relays, proving a proxied request comes from one of them. Required with REDIS_URL."
  }),
  logFormat: Logging.logFormatSetting
} as const

export type RelaySettingValues = Setting.ValuesOf<typeof relaySettings>
