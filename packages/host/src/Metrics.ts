import { Metric } from "effect"

/** Tunnel sessions that ended (and were followed by a reconnect), by reason (see `reasonOf`). */
export const reconnectsTotal = Metric.counter("host_reconnects_total", {
  description: "Tunnel sessions that ended and were followed by a reconnect, by reason",
  incremental: true
})

/** 1 while the tunnel to the relay is open, else 0. */
export const tunnelConnected = Metric.gauge("host_tunnel_connected", {
  description: "1 while the tunnel to the relay is open"
})

export const countReconnect = (reason: string) => Metric.increment(Metric.tagged(reconnectsTotal, "reason", reason))
