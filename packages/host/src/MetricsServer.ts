/**
 * The host agent's own small HTTP surface, off by default (`--metrics-port`):
 * `GET /metrics` (Prometheus text of the `host_` metrics) and `GET /health`
 * (200 while the process runs, with the tunnels' state in the body). It
 * listens on 127.0.0.1 unless told otherwise: it is for a local scraper or a
 * supervisor, not for the world.
 */
import { PrometheusText } from "@effect-relay/protocol"
import { Cause, Context, Data, Effect, Layer, Metric, Runtime, SubscriptionRef } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { reconnectReasons } from "./Errors.js"
import { HostAgent, SessionState } from "./HostAgent.js"
import { reconnectsFor, tunnelConnected } from "./Metrics.js"

export interface MetricsServerOptions {
  /** Port to listen on; 0 picks a free one (see `MetricsServer.port`). */
  readonly port: number
  /** Address to bind; default 127.0.0.1. */
  readonly bindHost?: string
}

/** The metrics server could not listen (port taken, address not local...). */
export class MetricsServerError extends Data.TaggedError("MetricsServerError")<{
  readonly port: number
  readonly bindHost: string
  readonly detail: string
}> {
  get message() {
    return `metrics server cannot listen on ${this.bindHost}:${this.port}: ${this.detail}`
  }
}

/** The running metrics server: where it listens. */
export class MetricsServer extends Context.Tag("effect-relay/host/MetricsServer")<MetricsServer, {
  readonly port: number
  readonly bindHost: string
}>() {}

const make = (options: MetricsServerOptions) =>
  Effect.gen(function*() {
    const bindHost = options.bindHost ?? "127.0.0.1"
    const agent = yield* HostAgent
    const runtime = yield* Effect.runtime<never>()
    // Series that exist before anything happened, so a scraper sees 0 rather than nothing.
    yield* Metric.value(tunnelConnected)
    for (const reason of reconnectReasons) yield* Metric.value(reconnectsFor(reason))

    const send = (res: http.ServerResponse, status: number, contentType: string, body: string, head: boolean) => {
      res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body) })
      res.end(head ? undefined : body)
    }

    const handle = (req: http.IncomingMessage, res: http.ServerResponse): Effect.Effect<void> =>
      Effect.gen(function*() {
        const path = (req.url ?? "/").split("?")[0]
        const head = req.method === "HEAD"
        if (path !== "/metrics" && path !== "/health") {
          return send(res, 404, "application/json", JSON.stringify({ error: "not_found" }), head)
        }
        if (req.method !== "GET" && !head) {
          res.setHeader("allow", "GET, HEAD")
          return send(res, 405, "application/json", JSON.stringify({ error: "method_not_allowed" }), false)
        }
        if (path === "/metrics") {
          return send(res, 200, PrometheusText.contentType, yield* PrometheusText.render(["host_"]), head)
        }
        return send(res, 200, "application/json", JSON.stringify(yield* healthOf(agent)), head)
      })

    const server = http.createServer((req, res) => {
      // Nothing to read from these requests.
      req.resume()
      Runtime.runFork(runtime)(handle(req, res).pipe(
        Effect.catchAllCause((cause) =>
          Effect.logError("host.metrics_defect", Cause.pretty(cause)).pipe(
            Effect.zipRight(Effect.sync(() => {
              if (!res.headersSent) send(res, 500, "application/json", JSON.stringify({ error: "internal" }), false)
              else res.destroy()
            }))
          )
        )
      ))
    })

    const port = yield* Effect.acquireRelease(
      Effect.async<number, MetricsServerError>((resume) => {
        const onError = (error: Error) =>
          resume(Effect.fail(new MetricsServerError({ port: options.port, bindHost, detail: error.message })))
        server.once("error", onError)
        server.listen(options.port, bindHost, () => {
          server.off("error", onError)
          resume(Effect.succeed((server.address() as AddressInfo).port))
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    yield* Effect.logInfo("host.metrics_listening").pipe(Effect.annotateLogs({ port, bindHost }))
    return MetricsServer.of({ port, bindHost })
  })

/**
 * `/health`'s body: `connected` and `since` (or `attempt`) for the agent as a whole, then how many
 * tunnels are open of how many it holds, and the relay each open one is on.
 */
const healthOf = (agent: Context.Tag.Service<typeof HostAgent>) =>
  Effect.gen(function*() {
    const state = yield* SubscriptionRef.get(agent.state)
    const sessions = yield* agent.tunnels.get
    const open = sessions.filter(SessionState.$is("Connected"))
    const whole = state._tag === "Connected"
      ? { connected: true, since: new Date(state.since).toISOString() }
      : { connected: false, attempt: state.attempt }
    return {
      ok: true,
      ...whole,
      tunnels: open.length,
      wanted: sessions.length,
      relays: open.map((t) => ({
        session: t.session,
        relay: t.relay,
        ...(t.relayId !== undefined ? { relayId: t.relayId, region: t.region } : {}),
        since: new Date(t.since).toISOString()
      }))
    }
  })

/**
 * The metrics server as a Layer next to the agent's, for example
 * `MetricsServerLive({ port: 9464 }).pipe(Layer.provideMerge(HostAgentLive(config)))`.
 * It listens as long as the Layer lives; releasing it closes the server and its connections.
 */
export const MetricsServerLive = (options: MetricsServerOptions): Layer.Layer<MetricsServer, MetricsServerError, HostAgent> =>
  Layer.scoped(MetricsServer, make(options))
