/**
 * A client's WebSocket to `/hosts/:hostId/...`: admitted like an HTTP request, then carried as a
 * channel of the host's tunnel when this relay holds it, else spliced to the same WebSocket on
 * the relay that does (or replayed there by Fly).
 */
import { Context, Effect, Layer } from "effect"
import type * as http from "node:http"
import type { Duplex } from "node:stream"
import { RelayConfig } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { replayHeader } from "../routing/FlyReplay.js"
import { PeerHeaders, PeerProxy, splice } from "../routing/PeerProxy.js"
import { type Route, Router } from "../routing/Router.js"
import { toHttpError } from "./ErrorResponse.js"
import { requestHeadersForHost } from "./ForwardHeaders.js"
import { rejectUpgrade, writeRaw } from "./Responses.js"
import { RouteAccess } from "./RouteAccess.js"
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
      const peers = yield* PeerProxy
      const access = yield* RouteAccess
      const upgrade = makeUpgrade(config.wsMaxFrameBytes)

      const toRemote = (req: http.IncomingMessage, socket: Duplex, head: Buffer, target: Remote) =>
        Effect.gen(function*() {
          if (config.routing === "fly-replay") {
            yield* RelayMetrics.routed("fly-replay")
            return yield* writeRaw(socket, 200, { "fly-replay": replayHeader(target, config.region) })
          }
          yield* RelayMetrics.routed("proxy")
          const upstream = yield* peers.connectSocket(target.entry, req).pipe(
            Effect.catchTag("ConnectError", (e) =>
              Effect.zipRight(
                rejectUpgrade(socket, { status: e.status ?? 502, error: "peer_refused", message: "the relay holding this host refused the WebSocket" }),
                Effect.interrupt
              ))
          )
          const client = yield* upgrade(req, socket, head)
          return yield* splice(client, upstream, config.wsBufferBytes)
        })

      const handle = (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: string) =>
        Effect.gen(function*() {
          const { credential, route, fromPeer } = yield* access.admit(req, url)
          const target = yield* router.locate(route.hostId, { fromPeer })
          if (target._tag === "Remote") return yield* toRemote(req, socket, head, target)
          yield* target.tunnel.hasRoomForChannel()
          yield* RelayMetrics.routed("local")
          const client = yield* upgrade(req, socket, head)
          yield* target.tunnel.openChannel(client, {
            path: route.path,
            ...(route.query === "" ? {} : { query: route.query }),
            headers: requestHeadersForHost(req.headers, req.socket.remoteAddress, {
              drop: handshake,
              trust: config.trustProxy,
              fromPeer,
              keepAuthorization: credential === "session"
            })
          })
        }).pipe(
          Effect.scoped,
          Effect.catchAll((e) => rejectUpgrade(socket, toHttpError(e)))
        )

      return ClientSockets.of({ handle })
    })
  )
}
