/**
 * A client's HTTP request to `/hosts/:hostId/...`: admitted (route, peer secret, token), then
 * routed: into the host's tunnel when this relay holds it, else to a relay that does (proxied, or
 * replayed there by Fly). A request no relay can serve right now is held until its host registers
 * somewhere (`Holds`), then routed once more. Its body is read once, whatever the route.
 * `/_whoowns` answers where the host is instead.
 */
import { LogLimits } from "@effect-relay/protocol"
import { Context, Effect, Layer } from "effect"
import type * as http from "node:http"
import { RelayConfig } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { firstReachable, replayable, replayHeader } from "../routing/FlyReplay.js"
import { PeerHeaders, PeerProxy } from "../routing/PeerProxy.js"
import { Holds } from "../routing/Holds.js"
import { type Route, Router } from "../routing/Router.js"
import { mayRetry } from "../routing/RoutingErrors.js"
import type { ByteBudget } from "../tunnel/ByteBudget.js"
import type { Tunnel } from "../tunnel/Tunnel.js"
import { requestHeadersForHost, responseHeadersForClient } from "./ForwardHeaders.js"
import type { HostRoute } from "./HostRoute.js"
import { BodyBudgets, type Reservation } from "./BodyBudgets.js"
import { BodyBudgetExhausted } from "./HttpErrors.js"
import { readBody } from "./ReadBody.js"
import type { ClientError } from "./ErrorResponse.js"
import { writeError, writeJson } from "./Responses.js"
import { RouteAccess } from "./RouteAccess.js"

type Remote = Extract<Route, { _tag: "Remote" }>

/** One client request on its way: its body once read, and the body budget it holds. */
interface Exchange {
  readonly req: http.IncomingMessage
  readonly res: http.ServerResponse
  readonly route: HostRoute
  readonly fromPeer: boolean
  /** Admitted by a session cookie: `Authorization` is the app's and goes to the host. */
  readonly keepAuthorization: boolean
  body: Buffer | undefined
  reservation: Reservation | undefined
  /** The client's body began to flow somewhere unread (streamed): the request cannot be routed again. */
  streamed: boolean
}

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
      const holds = yield* Holds
      const peers = yield* PeerProxy
      const access = yield* RouteAccess

      const whoOwns = (res: http.ServerResponse, route: HostRoute, fromPeer: boolean) =>
        router.locate(route.hostId, { fromPeer }).pipe(
          Effect.flatMap((target) =>
            writeJson(res, 200, target._tag === "Local"
              ? { region: config.region, machineId: config.machineId }
              : { region: target.owners[0].region, machineId: target.owners[0].machineId, owners: target.owners.map((o) => o.entry.owner) })
          ),
          Effect.catchTag("HostOffline", (e) => writeJson(res, 404, { error: "host_offline", message: e.message }))
        )

      /**
       * The request's body, read once (within the body budgets: the relay's, and the tunnel's when
       * it goes to a local tunnel first); a request held and routed again sends the same bytes.
       */
      const bodyOf = (ex: Exchange, tunnelBudget: ByteBudget | undefined) =>
        Effect.suspend(() => {
          if (ex.body !== undefined) return Effect.succeed(ex.body)
          ex.reservation = reserveUntilDone(ex.res, tunnelBudget)
          return Effect.tap(readBody(ex.req, readOptions(ex.reservation)), (body) => Effect.sync(() => ex.body = body))
        })

      const toRemote = (ex: Exchange, target: Remote) =>
        Effect.gen(function*() {
          const { req, res } = ex
          if (config.routing === "fly-replay" && replayable(req)) {
            yield* RelayMetrics.routed("fly-replay")
            res.writeHead(200, { "fly-replay": replayHeader(target.owners[0], config.region), "content-length": 0 })
            return res.end()
          }
          // The body streams to the owner unread (nothing of it is held here), unless an earlier
          // route read it already.
          yield* RelayMetrics.routed("proxy")
          yield* firstReachable(target.owners, req.method, (owner) =>
            peers.forwardHttp(owner.entry, req, ex.body, res, () => {
              ex.streamed = true
            }))
        })

      const headersForHost = (ex: Exchange) =>
        requestHeadersForHost(ex.req.headers, ex.req.socket.remoteAddress, {
          drop: [PeerHeaders.hop, PeerHeaders.secret],
          trust: config.trustProxy,
          fromPeer: ex.fromPeer,
          keepAuthorization: ex.keepAuthorization
        })

      /**
       * Version 2: the body goes to the host as it arrives and the response comes back as the host
       * sends it; nothing of either is held here beyond the stream's window.
       */
      const toStream = (ex: Exchange, tunnel: Tunnel) =>
        Effect.gen(function*() {
          const { req, res, route } = ex
          yield* RelayMetrics.routed("local")
          if (ex.body === undefined) ex.streamed = true
          yield* tunnel.stream({
            method: req.method ?? "GET",
            path: route.query === "" ? route.path : `${route.path}?${route.query}`,
            headers: headersForHost(ex),
            req,
            res,
            ...(ex.body !== undefined ? { body: ex.body } : {})
          })
        })

      const toTunnel = (ex: Exchange, tunnel: Tunnel) =>
        Effect.gen(function*() {
          if (tunnel.version === 2) return yield* toStream(ex, tunnel)
          const { req, res, route } = ex
          const body = yield* bodyOf(ex, tunnel.bodyBudget())
          const reservation = ex.reservation!
          yield* RelayMetrics.routed("local")
          const response = yield* tunnel.request({
            method: req.method ?? "GET",
            path: route.query === "" ? route.path : `${route.path}?${route.query}`,
            headers: headersForHost(ex),
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
            // The head is checked when it arrives (TunnelRequests), so this is not expected; a
            // response whose writeHead threw is half-set (status, bodiless flag) and cannot be
            // reused for a 502: the connection goes, rather than a wrong answer on it.
            Effect.catchAll((cause) =>
              Effect.logWarning("request.bad_response_from_host", LogLimits.clip(String(cause))).pipe(
                Effect.zipRight(Effect.sync(() => res.destroy()))
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

      /**
       * Routes the request. One no relay could serve (the host between its tunnels, or its agent
       * restarting) is held until the host registers somewhere, then routed once more. A request
       * another relay forwarded here is not held: that relay holds it.
       */
      const dispatch = (ex: Exchange, held: boolean): Effect.Effect<void, ClientError> =>
        router.locate(ex.route.hostId, { fromPeer: ex.fromPeer }).pipe(
          Effect.flatMap((target): Effect.Effect<void, ClientError> => target._tag === "Remote" ? toRemote(ex, target) : toTunnel(ex, target.tunnel)),
          Effect.catchIf(
            (e) => !held && !ex.fromPeer && !ex.streamed && !ex.res.headersSent && mayRetry(e, ex.req.method),
            (e) =>
              Effect.flatMap(holds.wait(ex.route.hostId), (outcome) => (outcome === "released_by_event" ? dispatch(ex, true) : Effect.fail(e)))
          )
        )

      const handle = (req: http.IncomingMessage, res: http.ServerResponse, url: string) =>
        Effect.gen(function*() {
          const { credential, route, fromPeer } = yield* access.admit(req, url)
          // On a host's hostname every path is the host's.
          if (route.via === "path" && route.path === "/_whoowns") return yield* whoOwns(res, route, fromPeer)
          const keepAuthorization = credential === "session"
          yield* dispatch({ req, res, route, fromPeer, keepAuthorization, body: undefined, reservation: undefined, streamed: false }, false)
        }).pipe(Effect.catchAll((e) => writeError(res, e)))

      return ClientRequests.of({ handle })
    })
  )
}
