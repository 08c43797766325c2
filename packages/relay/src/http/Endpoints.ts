/**
 * The relay's own endpoints: `/health` (the process answers), `/ready` (it takes tunnels: not
 * draining, directory reachable), `/metrics` (Prometheus text).
 */
import { PrometheusText } from "@effect-relay/protocol"
import { Context, Effect, Layer, Metric } from "effect"
import type * as http from "node:http"
import { RelayConfig } from "../config/RelayConfig.js"
import { Directory } from "../directory/Directory.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { Holds } from "../routing/Holds.js"
import { Draining } from "../tunnel/Draining.js"
import { TunnelRegistry } from "../tunnel/TunnelRegistry.js"
import { writeJson } from "./Responses.js"

export class Endpoints extends Context.Tag("effect-relay/Endpoints")<Endpoints, {
  readonly health: (res: http.ServerResponse) => Effect.Effect<void>
  readonly ready: (res: http.ServerResponse) => Effect.Effect<void>
  readonly metrics: (res: http.ServerResponse) => Effect.Effect<void>
}>() {
  static layer = Layer.effect(
    Endpoints,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const registry = yield* TunnelRegistry
      const draining = yield* Draining
      const directory = yield* Directory
      const holds = yield* Holds

      const health = (res: http.ServerResponse) => writeJson(res, 200, { ok: true, region: config.region, machineId: config.machineId })

      const ready = (res: http.ServerResponse) =>
        draining.isDraining()
          ? writeJson(res, 503, { ready: false, reason: "draining" })
          : !directory.isAvailable()
          ? writeJson(res, 503, { ready: false, reason: "directory_unavailable" })
          : writeJson(res, 200, { ready: true, tunnels: registry.size() })

      /** Prometheus text; the gauges that are cheaper to read than to keep are read now. */
      const metrics = (res: http.ServerResponse) =>
        Effect.gen(function*() {
          yield* Metric.set(RelayMetrics.tunnelsOpen, registry.size())
          yield* Metric.set(RelayMetrics.pendingRequests, registry.pendingRequests())
          yield* Metric.set(RelayMetrics.streamBufferedBytes, registry.streamBufferedBytes())
          yield* Metric.set(RelayMetrics.heldRequests, holds.size())
          const text = yield* PrometheusText.render(["relay_"])
          res.writeHead(200, { "content-type": PrometheusText.contentType, "content-length": Buffer.byteLength(text) })
          res.end(text)
        })

      return Endpoints.of({ health, ready, metrics })
    })
  )
}
