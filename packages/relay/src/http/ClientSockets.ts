/**
 * A client's WebSocket to `/hosts/:hostId/...`: admitted like an HTTP request, then carried as a
 * channel of the host's tunnel when this relay holds it, else spliced to the same WebSocket on
 * the relay that does (or replayed there by Fly).
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type * as http from "node:http"
import type { Duplex } from "node:stream"
import { RelayConfig } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { firstReachable, replayHeader } from "../routing/FlyReplay.js"
import { PeerHeaders, PeerProxy, splice } from "../routing/PeerProxy.js"
import { Holds } from "../routing/Holds.js"
import { type Route, Router } from "../routing/Router.js"
import { mayRetry } from "../routing/RoutingErrors.js"
import type { Tunnel } from "../tunnel/Tunnel.js"
import { type ClientError, toHttpError } from "./ErrorResponse.js"
import { requestHeadersForHost } from "./ForwardHeaders.js"
import { rejectUpgrade, writeRaw } from "./Responses.js"
import { type Admitted, RouteAccess } from "./RouteAccess.js"
import { makeUpgrade } from "./WsUpgrade.js"

type Remote = Extract<Route, { _tag: "Remote" }>

/** The handshake headers the relay's own upgrade consumes: the host's target gets fresh ones. */
const handshake = ["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", PeerHeaders.hop, PeerHeaders.secret]

export class ClientSockets extends Context.Tag("effect-relay/ClientSockets")<ClientSockets, {
  readonly handle: (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: string) => Effect.Effect<void>
}>() {
  static layer = Layer.effect(
    ClientSockets,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const router = yield* Router
      const holds = yield* Holds
      const peers = yield* PeerProxy
      const access = yield* RouteAccess
      const upgrade = makeUpgrade(config.wsMaxFrameBytes)

      const toRemote = (req: http.IncomingMessage, socket: Duplex, head: Buffer, target: Remote) =>
        Effect.gen(function*() {
          if (config.routing === "fly-replay") {
            yield* RelayMetrics.routed("fly-replay")
            return yield* writeRaw(socket, 200, { "fly-replay": replayHeader(target.owners[0], config.region) })
          }
          yield* RelayMetrics.routed("proxy")
          const upstream = yield* firstReachable(target.owners, "GET", (owner) => peers.connectSocket(owner.entry, req)).pipe(
            Effect.catchTag("ConnectError", (e) =>
              Effect.zipRight(
                rejectUpgrade(socket, { status: e.status ?? 502, error: "peer_refused", message: "the relay holding this host refused the WebSocket" }),
                Effect.interrupt
              ))
          )
          const client = yield* upgrade(req, socket, head)
          return yield* splice(client, upstream, config.wsBufferBytes)
        })

      const toTunnel = (req: http.IncomingMessage, socket: Duplex, head: Buffer, admitted: Admitted, tunnel: Tunnel) =>
        Effect.gen(function*() {
          const { credential, fromPeer, route } = admitted
          yield* tunnel.hasRoomForChannel()
          yield* RelayMetrics.routed("local")
          const client = yield* upgrade(req, socket, head)
          yield* tunnel.openChannel(client, {
            path: route.path,
            ...(route.query === "" ? {} : { query: route.query }),
            headers: requestHeadersForHost(req.headers, req.socket.remoteAddress, {
              drop: handshake,
              trust: config.trustProxy,
              fromPeer,
              keepAuthorization: credential === "session"
            })
          })
        })

      /** Routed like an HTTP request: one no relay can serve now is held until its host registers (not when a peer forwarded it). */
      const dispatch = (
        req: http.IncomingMessage,
        socket: Duplex,
        head: Buffer,
        admitted: Admitted,
        held: boolean
      ): Effect.Effect<void, ClientError, Scope.Scope> =>
        router.locate(admitted.hostId, { fromPeer: admitted.fromPeer }).pipe(
          Effect.flatMap((target): Effect.Effect<void, ClientError, Scope.Scope> =>
            target._tag === "Remote" ? toRemote(req, socket, head, target) : toTunnel(req, socket, head, admitted, target.tunnel)
          ),
          Effect.catchIf(
            (e) => !held && !admitted.fromPeer && mayRetry(e, "GET"),
            (e) =>
              Effect.flatMap(holds.wait(admitted.hostId), (outcome) =>
                outcome === "released_by_event" ? dispatch(req, socket, head, admitted, true) : Effect.fail(e))
          )
        )

      const handle = (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: string) =>
        Effect.gen(function*() {
          const admitted = yield* access.admit(req, url)
          yield* dispatch(req, socket, head, admitted, false)
        }).pipe(
          Effect.scoped,
          Effect.catchAll((e) => rejectUpgrade(socket, toHttpError(e)))
        )

      return ClientSockets.of({ handle })
    })
  )
}
