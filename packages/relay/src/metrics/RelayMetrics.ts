import { TaggedMetric } from "@effect-relay/protocol"
import { Effect, Metric, MetricBoundaries } from "effect"

/**
 * The relay's metrics, on Effect's `Metric`, served at `/metrics` in
 * Prometheus text (`PrometheusText` in the protocol package). Most are
 * recorded from socket callbacks, so each has a plain function that updates
 * it now; tagged series are made once per tag value and kept (tagging on
 * every call would cost more than the update).
 */

const { byTag, counter } = TaggedMetric

export const tunnelsOpen = Metric.gauge("relay_tunnels_open", { description: "Tunnels open on this relay." })

export const pendingRequests = Metric.gauge("relay_pending_requests", {
  description: "Requests sent into this relay's tunnels and waiting for the host's response."
})

export const streamBufferedBytes = Metric.gauge("relay_stream_buffered_bytes", {
  description: "Version 2: body and message bytes received from hosts and not yet taken by their clients (at most a stream window per stream, a tunnel window per tunnel)."
})

const registrations = byTag(counter("relay_tunnel_registrations_total", "Tunnel registrations, by result."), "result")
export type RegistrationResult =
  | "accepted"
  | "refused_unauthorized"
  | "refused_forbidden"
  | "refused_bad_host_id"
  | "refused_draining"
  | "refused_held_here"
  | "refused_busy"
  | "directory_unavailable"
export const registration = (result: RegistrationResult) => Metric.increment(registrations(result))

const closes = byTag(counter("relay_tunnel_closes_total", "Tunnels closed, by WebSocket close code."), "code")
export const recordTunnelClose = (code: number) => closes(String(code)).unsafeUpdate(1, [])

const requests = byTag(counter("relay_requests_total", "Client HTTP requests to /hosts/..., by the status answered (499: the client went away first)."), "status")
const requestDuration = Metric.histogram(
  "relay_request_duration_seconds",
  MetricBoundaries.fromIterable([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]),
  "Time from a client request's arrival to the end of its answer, for /hosts/... requests."
)
/** One client request answered with `status` after `seconds`. */
export const recordRequest = (status: number, seconds: number) => {
  requests(String(status)).unsafeUpdate(1, [])
  requestDuration.unsafeUpdate(seconds, [])
}

export const drainsTotal = counter("relay_drains_total", "Drains started (SIGINT/SIGTERM or the relay's scope closing).")
export const drainDuration = Metric.histogram(
  "relay_drain_duration_seconds",
  MetricBoundaries.fromIterable([0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 4, 8, 16]),
  "From the start of a drain to this relay's directory entries cleared."
)

const directoryErrors = byTag(
  counter("relay_directory_errors_total", "Directory calls that failed (Redis unreachable, slow or erroring), by operation."),
  "op"
)
export const directoryError = (op: string) => Metric.increment(directoryErrors(op))

const routedTotal = byTag(
  counter("relay_routed_total", "Client requests and WebSockets routed: to a tunnel on this relay (local), proxied to the relay holding it (proxy), or sent there by Fly (fly-replay)."),
  "mode"
)
export type RouteMode = "local" | "proxy" | "fly-replay"
export const routed = (mode: RouteMode) => Effect.sync(() => routedTotal(mode).unsafeUpdate(1, []))

const limitHits = byTag(
  counter("relay_limit_hits_total", "Times a bound was hit, by which (SECURITY.md lists them): the relay paused, refused or cut something instead of growing."),
  "limit"
)
export type Limit =
  | "tunnel_frame_rate"
  | "tunnel_flood_closed"
  | "tunnel_buffer"
  | "ws_buffer"
  | "channels"
  | "body_budget_wait"
  | "body_budget_refused"
  | "body_too_large"
  | "body_read_timeout"
  | "send_timeout"
  | "response_head"
  | "bad_frame"
  | "registration_rate"
  | "max_held"
/** One hit of a bound, counted now (from a callback or an effect). */
export const limitHit = (limit: Limit) => limitHits(limit).unsafeUpdate(1, [])

export const heldRequests = Metric.gauge("relay_held_requests", {
  description: "Client requests and WebSockets held for a host that no relay could serve yet, waiting for its registration."
})
const holds = byTag(
  counter("relay_holds_total", "Requests held for a host, by how the hold ended: released_by_event (the host registered), timed_out (HOLD_MS), refused (MAX_HELD held already), drained (ended by this relay's drain before it closed its connections)."),
  "outcome"
)
/** One hold ended so. */
export const hold = (outcome: "released_by_event" | "timed_out" | "refused" | "drained") => Effect.sync(() => holds(outcome).unsafeUpdate(1, []))
