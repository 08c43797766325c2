/**
 * Every setting of the relay, each defined once: flag, environment variable, default and what it
 * does. `effect-relay serve --help`, the environment, `RelayConfig.layerFromEnv`, the tests'
 * defaults and the README's table all come from here (`npm run settings-table` prints it).
 */
import * as Options from "@effect/cli/Options"
import { Logging, Setting, settingsWindows } from "@effect-relay/protocol"
import { Config, Option } from "effect"
import * as os from "node:os"
import * as TrustProxy from "./TrustProxy.js"

export type Routing = "proxy" | "fly-replay"

/** A domain name: dot-separated labels of letters, digits and inner hyphens (`localhost` too). */
const domainName = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i

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
  maxStreamedBodyBytes: Setting.optionalInteger({
    flag: "max-streamed-body-bytes",
    env: "MAX_STREAMED_BODY_BYTES",
    check: Setting.Checks.positiveInt,
    description: "Largest request or response body streamed through a version 2 tunnel (413 before it starts when declared, else the stream is cut). Unlimited when unset: a streamed body holds at most a window of memory. A body that must be held or replayed keeps MAX_BODY_BYTES."
  }),
  protocolV2: Setting.boolean({
    flag: "protocol-v2",
    env: "PROTOCOL_V2",
    default: true,
    description: "Speak tunnel protocol version 2 (streamed bodies, binary frames, flow control) with agents that offer it; --no-protocol-v2 speaks only version 1."
  }),
  streamWindowBytes: Setting.integer({
    flag: "stream-window-bytes",
    env: "STREAM_WINDOW_BYTES",
    default: settingsWindows.stream,
    defaultText: "524288 (512 KiB)",
    check: Setting.Checks.windowBytes,
    description: "Version 2: bytes of one stream (a body, a WebSocket's messages) a host may send before the relay has passed them on to the client; the most the relay holds of one stream."
  }),
  tunnelWindowBytes: Setting.integer({
    flag: "tunnel-window-bytes",
    env: "TUNNEL_WINDOW_BYTES",
    default: settingsWindows.tunnel,
    defaultText: "4194304 (4 MiB)",
    check: Setting.Checks.windowBytes,
    description: "Version 2: bytes of all of a tunnel's streams together a host may send before the relay has passed them on; the most the relay holds for one tunnel."
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
  // ---- bounds: every buffer, queue and rate a peer can fill (SECURITY.md lists what hitting each looks like) ----
  tunnelFramesPerSecond: Setting.integer({
    flag: "tunnel-frames-per-second",
    env: "TUNNEL_FRAMES_PER_SECOND",
    default: 5000,
    description: "Frames a host may send per second on its tunnel beyond its answers (a token bucket); over it the relay stops reading that tunnel for a moment. Each frame the relay sends (a request, credit, a ping) earns the host 4 frames of answer outside the bucket."
  }),
  tunnelFrameBurst: Setting.integer({
    flag: "tunnel-frame-burst",
    env: "TUNNEL_FRAME_BURST",
    default: 10_000,
    description: "Frames a host may send at once above the rate (the bucket's size)."
  }),
  tunnelFloodCloseMs: Setting.integer({
    flag: "tunnel-flood-close-ms",
    env: "TUNNEL_FLOOD_CLOSE_MS",
    default: 10_000,
    description: "A tunnel kept over its frame rate this long is closed 1008."
  }),
  wsMaxFrameBytes: Setting.integer({
    flag: "ws-max-frame-bytes",
    env: "WS_MAX_FRAME_BYTES",
    default: 1024 * 1024,
    defaultText: "1048576 (1 MiB)",
    description: "Largest frame a client WebSocket may send (larger: closed 1009)."
  }),
  wsBufferBytes: Setting.integer({
    flag: "ws-buffer-bytes",
    env: "WS_BUFFER_BYTES",
    default: 1024 * 1024,
    defaultText: "1048576 (1 MiB)",
    description: "Bytes queued toward one client WebSocket that does not read; over it the channel is closed 1013."
  }),
  tunnelBufferBytes: Setting.integer({
    flag: "tunnel-buffer-bytes",
    env: "TUNNEL_BUFFER_BYTES",
    default: 4 * 1024 * 1024,
    defaultText: "4194304 (4 MiB)",
    description: "Bytes queued toward one host; over it the relay stops reading that tunnel's client WebSockets until it drains."
  }),
  maxChannelsPerTunnel: Setting.integer({
    flag: "max-channels",
    env: "MAX_CHANNELS_PER_TUNNEL",
    default: 256,
    description: "Client WebSockets carried by one tunnel; beyond it new ones are refused 503."
  }),
  bodyBudgetBytes: Setting.integer({
    flag: "body-budget-bytes",
    env: "BODY_BUDGET_BYTES",
    default: 128 * 1024 * 1024,
    defaultText: "134217728 (128 MiB)",
    description: "Request and response body bytes the whole relay holds at once: a request body waits for room (BODY_BUDGET_WAIT_MS), then 503 busy; a response without room is answered 503 busy."
  }),
  tunnelBodyBudgetBytes: Setting.integer({
    flag: "tunnel-body-budget-bytes",
    env: "TUNNEL_BODY_BUDGET_BYTES",
    default: 32 * 1024 * 1024,
    defaultText: "33554432 (32 MiB)",
    description: "The same, for one tunnel: one tenant cannot take the whole relay's budget."
  }),
  bodyBudgetWaitMs: Setting.integer({
    flag: "body-budget-wait-ms",
    env: "BODY_BUDGET_WAIT_MS",
    default: 5000,
    check: Setting.Checks.nonNegativeInt,
    description: "How long a request body waits for room in the budgets before 503 busy."
  }),
  sendTimeoutMs: Setting.integer({
    flag: "send-timeout-ms",
    env: "SEND_TIMEOUT_MS",
    default: 60_000,
    description: "A client that takes nothing of its response for this long is disconnected."
  }),
  bodyReadTimeoutMs: Setting.integer({
    flag: "body-read-timeout-ms",
    env: "BODY_READ_TIMEOUT_MS",
    default: 60_000,
    description: "A client that sends nothing of its request body for this long gets 408 and is disconnected."
  }),
  maxResponseHeaderBytes: Setting.integer({
    flag: "max-response-header-bytes",
    env: "MAX_RESPONSE_HEADER_BYTES",
    default: 64 * 1024,
    defaultText: "65536 (64 KiB)",
    description: "Largest response head (names and values) a host may send; over it the client gets 502."
  }),
  holdMs: Setting.integer({
    flag: "hold-ms",
    env: "HOLD_MS",
    default: 10_000,
    check: Setting.Checks.nonNegativeInt,
    description: "A request for a host no relay can serve right now waits this long for the host to register (anywhere) before 503 host_offline; 0 answers at once."
  }),
  maxHeld: Setting.integer({
    flag: "max-held",
    env: "MAX_HELD",
    default: 10_000,
    description: "Requests held at once on this relay; beyond it 503 host_offline at once."
  }),
  drainFlushMs: Setting.integer({
    flag: "drain-flush-ms",
    env: "DRAIN_FLUSH_MS",
    default: 5000,
    description: "On drain, how long each tunnel waits for its in-flight requests to be answered after the drain frame (new ones go to the host's other relay) before failing the rest with 502 and closing 4001. Keep it below DRAIN_DEADLINE_MS."
  }),
  registrationsPerSecond: Setting.integer({
    flag: "registrations-per-second",
    env: "REGISTRATIONS_PER_SECOND",
    default: 1000,
    description: "Tunnel registrations this relay admits per second (a token bucket: when another relay drains, its hosts come here): over it a host is closed 1013 with a retryAfterMs that spaces the retries at this rate. Also how a draining relay sizes the window it spreads its hosts' re-dials over."
  }),
  registrationBurst: Setting.integer({
    flag: "registration-burst",
    env: "REGISTRATION_BURST",
    default: 1000,
    description: "Registrations admitted at once above the rate (the bucket's size)."
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
  redisKeyPrefix: Setting.text({
    flag: "redis-key-prefix",
    env: "REDIS_KEY_PREFIX",
    default: "{relay}:",
    description: "Prefix of the directory's Redis keys and its channel of registrations. The braces are a Redis Cluster hash tag: every key in one slot, so the scripts also run on a cluster."
  }),
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
  trustProxy: trustProxySetting(),
  // ---- hostnames: a host at {name}--{org}.PUBLIC_DOMAIN, with a browser login (README "Hostnames") ----
  publicDomain: Setting.optionalText({
    flag: "public-domain",
    env: "PUBLIC_DOMAIN",
    check: {
      message: "must be a domain name such as relay.example.com (letters, digits, hyphens and dots; no scheme, port or wildcard)",
      validation: (text) => domainName.test(text)
    },
    description: "Domain under which every host also has a hostname of its own: org:name at name--org.<domain> " +
      "(lowercase letters, digits and single hyphens), every path and WebSocket included, with a browser login " +
      "(?token= becomes a session cookie). Point a wildcard DNS record *.<domain> at the relay. Without it, hosts " +
      "are reached at /hosts/{org}:{name}/ only."
  }),
  sessionSecret: Setting.optionalSecret({
    flag: "session-secret",
    env: "RELAY_SESSION_SECRET",
    description: "Secret the browser session cookies are signed with (HMAC-SHA256 with a key derived by HKDF; the same on " +
      "every relay). Without it the key is derived from RELAY_AUTH_SECRET; required with RELAY_AUTH_JWKS_URL and " +
      "PUBLIC_DOMAIN. Changing it ends every browser session."
  }),
  maxHeaderBytes: Setting.integer({
    flag: "max-header-bytes",
    env: "MAX_HEADER_BYTES",
    default: 16 * 1024,
    defaultText: "16384 (16 KiB, Node's default)",
    description: "Largest request line plus headers the relay reads; beyond it 431."
  }),
  headersTimeoutMs: Setting.integer({
    flag: "headers-timeout-ms",
    env: "HEADERS_TIMEOUT_MS",
    default: 80_000,
    check: { message: "must be an integer from 1 to 300000", validation: (n) => Number.isInteger(n) && n > 0 && n <= 300_000 },
    description: "Answer 408 and close the connection when a request's headers take longer than this to arrive."
  }),
  logFormat: Logging.logFormatSetting
} as const

/** `TRUST_PROXY`: read as text, checked and kept parsed (`config/TrustProxy.ts`). */
function trustProxySetting(): Setting.Setting<TrustProxy.TrustProxy> {
  const text = Setting.text({
    flag: "trust-proxy",
    env: "TRUST_PROXY",
    default: "none",
    check: { message: `must be ${TrustProxy.describe}`, validation: (t) => TrustProxy.parse(t) !== undefined },
    description: "Who may tell the relay a client's address and scheme. none: nobody, the TCP peer is the client " +
      "(X-Forwarded-For is that address, X-Forwarded-Proto http). fly: Fly's proxy, the client is Fly-Client-IP and the " +
      "scheme Fly's X-Forwarded-Proto (when Fly-Client-IP is absent, as none). A list of addresses and CIDR ranges " +
      "(10.0.0.0/8, ::1): proxies in front; the client is the rightmost address of X-Forwarded-For plus the TCP peer " +
      "that is not one of them, and a trusted peer's X-Forwarded-Proto and X-Forwarded-Host are kept. Whatever the " +
      "setting, a client's own forwarding headers never reach the host: see SECURITY.md."
  })
  return {
    ...text,
    config: Config.map(text.config, TrustProxy.parseOrThrow),
    option: Options.map(text.option, TrustProxy.parseOrThrow)
  }
}

export type RelaySettingValues = Setting.ValuesOf<typeof relaySettings>
