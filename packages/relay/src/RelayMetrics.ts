import { Effect, Metric, MetricBoundaries } from "effect"

/**
 * The relay's metrics, on Effect's `Metric` (served at `/metrics` in
 * Prometheus text by `PrometheusText.ts`). Tagged series used on the request
 * path are made once and kept: tagging a metric on every call costs more
 * than the increment itself.
 */

export const tunnelsOpen = Metric.gauge("relay_tunnels_open", { description: "Tunnels open on this relay." })

const registrations = Metric.counter("relay_tunnel_registrations_total", {
  description: "Tunnel registrations, by result.",
  incremental: true
})
export type RegistrationResult = "accepted" | "replaced" | "refused_auth" | "refused_draining" | "refused_host_id" | "failed"
export const registration = (result: RegistrationResult) => Metric.increment(cached(registrations, "result", result))

const closes = Metric.counter("relay_tunnel_closes_total", {
  description: "Tunnels closed, by WebSocket close code.",
  incremental: true
})
export const tunnelClosed = (code: number) => Metric.increment(cached(closes, "code", String(code)))

const requests = Metric.counter("relay_requests_total", {
  description: "Client HTTP requests answered, by status.",
  incremental: true
})

const requestDuration = Metric.histogram(
  "relay_request_duration_seconds",
  MetricBoundaries.fromIterable([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]),
  "Time from a client request's arrival to its answer."
)

/** One client request answered with `status` after `seconds`. */
export const requestAnswered = (status: number, seconds: number) =>
  Effect.zipRight(
    Metric.increment(cached(requests, "status", String(status))),
    Metric.update(requestDuration, seconds)
  )

export const pendingRequests = Metric.gauge("relay_pending_requests", {
  description: "Requests sent into tunnels and waiting for the host's response."
})

export const drains = Metric.counter("relay_drains_total", { description: "Drains started.", incremental: true })

export const drainDuration = Metric.histogram(
  "relay_drain_duration_seconds",
  MetricBoundaries.fromIterable([0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16]),
  "From the drain signal to the directory cleared."
)

const directoryErrors = Metric.counter("relay_directory_errors_total", {
  description: "Directory calls that failed (Redis down or slow), by operation.",
  incremental: true
})
export const directoryError = (op: string) => Metric.increment(cached(directoryErrors, "op", op))

const routedTotal = Metric.counter("relay_routed_total", {
  description: "Client requests and WebSockets routed, by how: to a local tunnel, proxied to a peer relay, or sent there by fly-replay.",
  incremental: true
})
export type RouteMode = "local" | "proxy" | "fly-replay"
export const routed = (mode: RouteMode) => Metric.increment(cached(routedTotal, "mode", mode))

const taggedCache = new WeakMap<object, Map<string, Metric.Metric.Counter<number>>>()

/** The series of `metric` with one tag, made once per value. */
function cached(metric: Metric.Metric.Counter<number>, key: string, value: string): Metric.Metric.Counter<number> {
  let byValue = taggedCache.get(metric)
  if (byValue === undefined) taggedCache.set(metric, byValue = new Map())
  let series = byValue.get(value)
  if (series === undefined) byValue.set(value, series = Metric.tagged(metric, key, value))
  return series
}
