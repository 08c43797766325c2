/**
 * Every setting of the host agent, each defined once: flag, environment variable, default and
 * what it does. `effect-relay-host --help`, the environment, `HostAgentLive`'s defaults and the
 * README's table all come from here.
 */
import { decodeHostId, Logging, Setting, settingsWindows } from "@effect-relay/protocol"
import { Either } from "effect"

const hasScheme = (schemes: ReadonlyArray<string>) => (value: string) => {
  try {
    return schemes.includes(new URL(value).protocol)
  } catch {
    return false
  }
}

export const Checks = {
  relayUrl: { message: "must be ws://, wss://, http:// or https:// URLs", validation: hasScheme(["ws:", "wss:", "http:", "https:"]) },
  targetUrl: { message: "must be an http:// or https:// URL", validation: hasScheme(["http:", "https:"]) },
  hostId: {
    message: "must be {orgId}:{name}, each part 1-64 of [A-Za-z0-9._-]",
    validation: (value: string) => Either.isRight(decodeHostId(value))
  }
} satisfies Record<string, Setting.Check<string>>

/** What the agent needs: where the relay is, who this host is, its token, the local service; the rest has laptop defaults. */
export const hostAgentSettings = {
  relayUrls: Setting.list({
    flag: "relay",
    env: "RELAY_URL",
    check: Checks.relayUrl,
    description:
      "Relay base URL (ws://, wss://, http://, https://); the tunnel is at /tunnel under it. Repeat the flag (or give RELAY_URL comma-separated) for several relays: the tunnels take different ones (tunnel i prefers the i-th), and a tunnel that ends prefers another free one. One URL in front of several relays (a load balancer) works too: the relays tell the agent who they are."
  }),
  tunnels: Setting.integer({
    flag: "tunnels",
    env: "TUNNELS",
    default: 2,
    check: Setting.Checks.positiveInt,
    description:
      "Tunnels to hold at once, each to a different relay with its own reconnect loop: a drain or a crash of one relay leaves the others serving. With fewer relays than this, the agent says so once (host.single_relay) and holds one tunnel per relay."
  }),
  hostId: Setting.requiredText({ flag: "host-id", env: "HOST_ID", check: Checks.hostId, description: "This host's id, {orgId}:{name}." }),
  token: Setting.secret({
    flag: "token",
    env: "RELAY_TOKEN",
    description: "Bearer token for the relay (prefer the variable: flags show in `ps`). Never logged."
  }),
  targetUrl: Setting.requiredText({
    flag: "target",
    env: "TARGET_URL",
    check: Checks.targetUrl,
    description: "The local service to expose, e.g. http://127.0.0.1:3000."
  }),
  connectTimeoutMs: Setting.integer({
    flag: "connect-timeout-ms",
    env: "CONNECT_TIMEOUT_MS",
    default: 20_000,
    description: "Time allowed to open the tunnel (and a WebSocket to the target), in ms."
  }),
  watchdogMs: Setting.integer({
    flag: "watchdog-ms",
    env: "WATCHDOG_MS",
    default: 75_000,
    description: "Close the tunnel (4002) and reconnect after this many ms without a frame from the relay."
  }),
  requestTimeoutMs: Setting.integer({
    flag: "request-timeout-ms",
    env: "REQUEST_TIMEOUT_MS",
    default: 30_000,
    description: "Time the target may take to answer an HTTP request before a 504, in ms."
  }),
  maxBodyBytes: Setting.integer({
    flag: "max-body-bytes",
    env: "MAX_BODY_BYTES",
    default: 10 * 1024 * 1024,
    defaultText: "10485760 (10 MiB)",
    description: "Version 1: largest target response body forwarded (larger: 502). Version 2 streams bodies of any size."
  }),
  protocolV2: Setting.boolean({
    flag: "protocol-v2",
    env: "PROTOCOL_V2",
    default: true,
    description: "Offer tunnel protocol version 2 (bodies and WebSocket messages streamed in binary frames, with flow control); a relay that does not speak it answers version 1. --no-protocol-v2 speaks only version 1."
  }),
  streamWindowBytes: Setting.integer({
    flag: "stream-window-bytes",
    env: "STREAM_WINDOW_BYTES",
    default: settingsWindows.stream,
    defaultText: "524288 (512 KiB)",
    check: Setting.Checks.windowBytes,
    description: "Version 2: bytes of one stream (a request body, a WebSocket's messages) the relay may send before the agent has passed them on to the target."
  }),
  tunnelWindowBytes: Setting.integer({
    flag: "tunnel-window-bytes",
    env: "TUNNEL_WINDOW_BYTES",
    default: settingsWindows.tunnel,
    defaultText: "4194304 (4 MiB)",
    check: Setting.Checks.windowBytes,
    description: "Version 2: bytes of all of a tunnel's streams together the relay may send before the agent has passed them on."
  }),
  wsQueueFrames: Setting.integer({
    flag: "ws-queue-frames",
    env: "WS_QUEUE_FRAMES",
    default: 256,
    description: "Version 1: frames a WebSocket channel may queue for the target before it is closed with 1013 (version 2 paces them with credit)."
  }),
  drainJitterMs: Setting.integer({
    flag: "drain-jitter-ms",
    env: "DRAIN_JITTER_MS",
    default: 250,
    check: Setting.Checks.nonNegativeInt,
    description: "After a drain, reconnect within a random delay up to this many ms."
  }),
  drainGraceMs: Setting.integer({
    flag: "drain-grace-ms",
    env: "DRAIN_GRACE_MS",
    default: 6_000,
    description: "After a drain frame, finish in-flight requests and wait up to this many ms for the relay's 4001 close (the relay waits DRAIN_FLUSH_MS, 5 s by default, for them)."
  }),
  stopGraceMs: Setting.integer({
    flag: "stop-grace-ms",
    env: "STOP_GRACE_MS",
    default: 5_000,
    check: Setting.Checks.nonNegativeInt,
    description: "On stop (SIGINT/SIGTERM), each tunnel tells its relay the host is leaving (no new requests come), and its requests in flight get up to this many ms to be answered before it closes."
  }),
  drainRetryMs: Setting.integer({
    flag: "drain-retry-ms",
    env: "DRAIN_RETRY_MS",
    default: 250,
    description: "After a drain, retry a failed connect this often (a relay restarting in place)."
  }),
  drainRetryWindowMs: Setting.integer({
    flag: "drain-retry-window-ms",
    env: "DRAIN_RETRY_WINDOW_MS",
    default: 15_000,
    check: Setting.Checks.nonNegativeInt,
    description: "How long after a drain the fast retry lasts before the exponential backoff takes over."
  }),
  backoffBaseMs: Setting.integer({ flag: "backoff-base-ms", env: "BACKOFF_BASE_MS", default: 1_000, description: "First reconnect delay in ms; doubles on each failure." }),
  backoffCapMs: Setting.integer({ flag: "backoff-cap-ms", env: "BACKOFF_CAP_MS", default: 5_000, description: "Longest reconnect delay in ms." }),
  backoffJitter: Setting.number({
    flag: "backoff-jitter",
    env: "BACKOFF_JITTER",
    default: 0.2,
    check: Setting.Checks.fraction,
    description: "Each reconnect delay is multiplied by a random factor in [1 - jitter, 1]."
  }),
  resetOnDrain: Setting.boolean({
    flag: "reset-on-drain",
    env: "RESET_ON_DRAIN",
    default: true,
    description:
      "A drain resets the backoff and reconnects at once (within the drain jitter, then the fast retry). --no-reset-on-drain gives the behaviour from before drains were handled, a drain climbing the backoff like any other failure: only for measuring the difference."
  })
} as const

/** The agent's own HTTP surface and its logs: the CLI's, not the Layer's. */
export const hostProcessSettings = {
  metricsPort: Setting.optionalInteger({
    flag: "metrics-port",
    env: "METRICS_PORT",
    check: { message: "must be an integer from 0 to 65535 (0: a free port)", validation: Setting.Checks.port.validation },
    description: "Serve GET /metrics (Prometheus text of the host_ metrics) and GET /health on this port (0: a free one, logged as host.metrics_listening). Off when unset."
  }),
  metricsBind: Setting.text({
    flag: "metrics-bind",
    env: "METRICS_BIND",
    default: "127.0.0.1",
    description: "Address the metrics server binds (with --metrics-port)."
  }),
  logFormat: Logging.logFormatSetting
} as const

export type HostAgentSettingValues = Setting.ValuesOf<typeof hostAgentSettings>
