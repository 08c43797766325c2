import { TaggedMetric } from "@effect-relay/protocol"
import { Effect, Metric } from "effect"

/**
 * The host agent's metrics, on Effect's `Metric` (one registry per process),
 * served by `MetricsServer` at `/metrics` in Prometheus text. Tagged series
 * are made once per tag value and kept.
 */

/** Every end of a connect attempt or tunnel session (each is followed by another attempt), by reason (see `reasonOf`). */
export const reconnectsTotal = TaggedMetric.counter(
  "host_reconnects_total",
  "Times the host agent went back to dialing the relay: a connect attempt that failed or a tunnel that ended, by reason."
)

/**
 * Open tunnels of this process's host agents: 0 to `tunnels` for one agent (a program that runs
 * several agents sees the sum).
 */
export const tunnelConnected = Metric.gauge("host_tunnel_connected", {
  description: "Tunnels of the host agent open to relays now, 0 to --tunnels (the sum when a process runs several agents)."
})

/** The `host_reconnects_total` series for one reason, made once. */
export const reconnectsFor = TaggedMetric.byTag(reconnectsTotal, "reason")

export const countReconnect = (reason: string): Effect.Effect<void> => Metric.increment(reconnectsFor(reason))

/** Marks one tunnel open for as long as the scope lives. */
export const tunnelOpenScoped = Effect.acquireRelease(
  Metric.increment(tunnelConnected),
  () => Metric.incrementBy(tunnelConnected, -1)
)
