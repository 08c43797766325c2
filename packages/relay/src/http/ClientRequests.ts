/**
 * A client's HTTP request to `/hosts/:hostId/...`: admitted (route, peer secret, token), then
 * routed: into the host's tunnel when this relay holds it, else to the relay that does (proxied,
 * or replayed there by Fly). `/_whoowns` answers where the host is instead.
 */
import { Context, Effect, Layer } from "effect"
import type * as http from "node:http"
import { RelayConfig } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { replayable, replayHeader } from "../routing/FlyReplay.js"
import { PeerHeaders, PeerProxy } from "../routing/PeerProxy.js"
import { type Route, Router } from "../routing/Router.js"
import type { ByteBudget } from "../tunnel/ByteBudget.js"
import type { Tunnel } from "../tunnel/Tunnel.js"
import { requestHeadersForHost, responseHeadersForClient } from "./ForwardHeaders.js"
import type { HostRoute } from "./HostRoute.js"
import { BodyBudgets, type Reservation } from "./BodyBudgets.js"
import { BodyBudgetExhausted } from "./HttpErrors.js"
import { readBody } from "./ReadBody.js"
import { writeError, writeJson } from "./Responses.js"
import { RouteAccess } from "./RouteAccess.js"

type Remote = Extract<Route, { _tag: "Remote" }>

export class ClientRequests extends Context.Tag("effect-relay/ClientRequests")<ClientRequests, {
  /** Answers one `/hosts/...` request; every expected failure becomes its status. */
  readonly handle: (req: http.IncomingMessage, res: http.ServerResponse, url: string) => Effect.Effect<void>
}>() {
  static layer = Layer.effect(
    ClientRequests,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const budgets = yield* BodyBudgets
      const router = yield* Router
      const peers = yield* PeerProxy
      const access = yield* RouteAccess

      const whoOwns = (res: http.ServerResponse, route: HostRoute, fromPeer: boolean) =>
        router.locate(route.hostId, { fromPeer }).pipe(
          Effect.flatMap((target) =>
            writeJson(res, 200, target._tag === "Local"
              ? { region: config.region, machineId: config.machineId }
              : { region: target.region, machineId: target.machineId })
          ),
          Effect.catchTag("HostOffline", (e) => writeJson(res, 404, { error: "host_offline", message: e.message }))
        )

      const toRemote = (req: http.IncomingMessage, res: http.ServerResponse, target: Remote) =>
        Effect.gen(function*() {
          if (config.routing === "fly-replay" && replayable(req)) {
            yield* RelayMetrics.routed("fly-replay")
            res.writeHead(200, { "fly-replay": replayHeader(target, config.region), "content-length": 0 })
            return res.end()
          }
          const body = yield* readBody(req, readOptions(reserveUntilDone(res, undefined)))
          yield* RelayMetrics.routed("proxy")
          yield* peers.forwardHttp(target.entry, req, body, res)
        })

      const toTunnel = (req: http.IncomingMessage, res: http.ServerResponse, route: HostRoute, tunnel: Tunnel, fromPeer: boolean, keepAuthorization: boolean) =>
        Effect.gen(function*() {
          const reservation = reserveUntilDone(res, tunnel.bodyBudget())
          const body = yield* readBody(req, readOptions(reservation))
          yield* RelayMetrics.routed("local")
          const response = yield* tunnel.request({
            method: req.method ?? "GET",
            path: route.query === "" ? route.path : `${route.path}?${route.query}`,
            headers: requestHeadersForHost(req.headers, req.socket.remoteAddress, {
              drop: [PeerHeaders.hop, PeerHeaders.secret],
              trust: config.trustProxy,
              fromPeer,
              keepAuthorization
            }),
            body
          })
          // The response is in memory until its client has taken it: it must fit the budgets till then.
          if (!reservation.tryCharge(response.body.length)) return yield* new BodyBudgetExhausted({ budget: "tunnel" })
          if (response.status < 200) {
            // An interim status is not an answer: the client would wait for one that never comes.
            return yield* writeJson(res, 502, { error: "bad_response", message: `the host answered with status ${response.status}` })
          }
          yield* Effect.try(() => {
            const noBody = req.method === "HEAD" || response.status === 204 || response.status === 304
            res.writeHead(response.status, {
              ...responseHeadersForClient(response.headers),
              ...(noBody ? {} : { "content-length": response.body.length })
            })
            res.end(noBody ? undefined : response.body)
            cutIfNotRead(res)
          }).pipe(
            Effect.catchAll((cause) =>
              Effect.logWarning("request.bad_response_from_host", String(cause)).pipe(
                Effect.zipRight(writeJson(res, 502, { error: "bad_response", message: "the host sent a response that is not valid HTTP" }))
              )
            )
          )
        })

      const readOptions = (reservation: Reservation) => ({
        limit: config.maxBodyBytes,
        readTimeoutMs: config.bodyReadTimeoutMs,
        reservation
      })

      /** A reservation for one exchange, given back when it ends (its response written and taken, or the client gone). */
      const reserveUntilDone = (res: http.ServerResponse, tunnelBudget: ByteBudget | undefined) => {
        const reservation = budgets.reserve(tunnelBudget)
        res.once("close", reservation.release)
        return reservation
      }

      /** A client that takes nothing of its response for the send timeout is cut off. */
      const cutIfNotRead = (res: http.ServerResponse) => {
        if (res.writableFinished) return
        res.setTimeout(config.sendTimeoutMs, () => {
          RelayMetrics.limitHit("send_timeout")
          res.destroy()
        })
      }

      const handle = (req: http.IncomingMessage, res: http.ServerResponse, url: string) =>
        Effect.gen(function*() {
          const { credential, route, fromPeer } = yield* access.admit(req, url)
          // On a host's hostname every path is the host's.
          if (route.via === "path" && route.path === "/_whoowns") return yield* whoOwns(res, route, fromPeer)
          const target = yield* router.locate(route.hostId, { fromPeer })
          return yield* target._tag === "Remote"
            ? toRemote(req, res, target)
            : toTunnel(req, res, route, target.tunnel, fromPeer, credential === "session")
        }).pipe(Effect.catchAll((e) => writeError(res, e)))

      return ClientRequests.of({ handle })
    })
  )
}
