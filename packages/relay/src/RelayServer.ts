import { decodeHostId, PrometheusText, Transport, type HostId } from "@effect-relay/protocol"
import { Cause, Context, Effect, Either, FiberId, Layer, Metric, Runtime } from "effect"
import * as http from "node:http"
import type { Duplex } from "node:stream"
import { WebSocketServer, type WebSocket } from "ws"
import { Auth } from "./Auth.js"
import { BadHostId, BadRequest, PayloadTooLarge, RouteNotFound, type ClientError } from "./Errors.js"
import { httpErrorBody, toHttpError, toTunnelClose, type HttpError } from "./ErrorResponse.js"
import { requestHeadersForHost, responseHeadersForClient } from "./Headers.js"
import { bearerToken, parseHostRoute, takeToken } from "./HostRoute.js"
import { RelayAddress } from "./RelayAddress.js"
import { Directory } from "./Directory.js"
import { Draining, refuseWhileDraining } from "./Draining.js"
import { internalUrlFor, RelayConfig } from "./RelayConfig.js"
import { PeerHeaders, PeerProxy, splice } from "./PeerProxy.js"
import { type Route, Router } from "./Router.js"
import * as RelayMetrics from "./RelayMetrics.js"
import { TunnelRegistry } from "./TunnelRegistry.js"

/**
 * The relay's HTTP surface on a node:http server: `/health`, `/ready`,
 * `/tunnel` (host registration), `/hosts/:hostId/*` (client requests and
 * WebSockets). node:http and ws are wrapped here; everything behind them is
 * Effect services.
 */
export class RelayServer extends Context.Tag("effect-relay/RelayServer")<RelayServer, {
  readonly server: http.Server
  readonly port: number
  /** Closes the listening socket: new connections are refused, existing ones keep working. */
  readonly stopAccepting: Effect.Effect<void>
  /** Closes every remaining client connection (after the tunnels are gone). */
  readonly closeConnections: Effect.Effect<void>
}>() {
  static layer = Layer.scoped(
    RelayServer,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const registry = yield* TunnelRegistry
      const auth = yield* Auth
      const address = yield* RelayAddress
      const draining = yield* Draining
      const directory = yield* Directory
      const router = yield* Router
      const peers = yield* PeerProxy
      const runtime = yield* Effect.runtime<never>()
      const run = Runtime.runFork(runtime)

      const wss = new WebSocketServer({
        noServer: true,
        clientTracking: false,
        perMessageDeflate: false,
        // A body travels base64 in a JSON frame: room for a maximal body plus the envelope.
        maxPayload: Math.ceil(config.maxBodyBytes * 4 / 3) + 1024 * 1024,
        handleProtocols: (protocols) => protocols.values().next().value ?? false
      })

      const upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
        Effect.async<WebSocket>((resume) => {
          // ws never calls back when it refuses the handshake (it answers 400 and destroys the
          // socket), nor when the socket is already gone: end with the socket, then.
          const onClose = () => resume(Effect.interrupt)
          socket.once("close", onClose)
          if (socket.destroyed) return resume(Effect.interrupt)
          wss.handleUpgrade(req, socket, head, (ws) => {
            socket.off("close", onClose)
            resume(Effect.succeed(ws))
          })
          return Effect.sync(() => socket.off("close", onClose))
        }).pipe(Effect.flatMap(Transport.fromWebSocket))

      const json = (res: http.ServerResponse, status: number, body: unknown, close = false) =>
        Effect.sync(() => {
          if (res.headersSent) return void res.destroy()
          const text = JSON.stringify(body)
          res.writeHead(status, {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(text),
            // The body of a refused upload is not read: the connection cannot be reused.
            ...(close ? { connection: "close" } : {})
          })
          res.end(text)
        })

      /** Prometheus text; the gauges that are cheaper to read than to keep are read now. */
      const metrics = (res: http.ServerResponse) =>
        Effect.gen(function*() {
          yield* Metric.set(RelayMetrics.tunnelsOpen, registry.size())
          yield* Metric.set(RelayMetrics.pendingRequests, registry.pendingRequests())
          const text = yield* PrometheusText.render(["relay_"])
          res.writeHead(200, { "content-type": PrometheusText.contentType, "content-length": Buffer.byteLength(text) })
          res.end(text)
        })

      const fail = (res: http.ServerResponse, e: ClientError) => {
        const error = toHttpError(e)
        return Effect.logDebug("request.failed").pipe(
          Effect.annotateLogs({ status: error.status, error: error.error }),
          Effect.zipRight(json(res, error.status, { error: error.error, message: error.message }, e._tag === "PayloadTooLarge"))
        )
      }

      /** The answer that sends a client to the owner relay through Fly's proxy. */
      const replayHeader = (target: Extract<Route, { _tag: "Remote" }>) =>
        target.region === config.region ? `instance=${target.machineId}` : `region=${target.region}`

      /** Fly cannot replay a request whose body is over 1 MB (or of unknown length): those are proxied. */
      const replayable = (req: http.IncomingMessage) =>
        req.headers["transfer-encoding"] === undefined && Number(req.headers["content-length"] ?? "0") <= 1_000_000

      // Counted, not logged: a log line per request would cost more than the rest of its routing.
      const routed = (mode: RelayMetrics.RouteMode, _hostId: HostId) => RelayMetrics.routed(mode)

      const forwardRemote = (req: http.IncomingMessage, res: http.ServerResponse, target: Extract<Route, { _tag: "Remote" }>) =>
        Effect.gen(function*() {
          if (config.routing === "fly-replay" && replayable(req)) {
            yield* routed("fly-replay", target.entry.hostId)
            res.writeHead(200, { "fly-replay": replayHeader(target), "content-length": 0 })
            return res.end()
          }
          const body = yield* readBody(req, config.maxBodyBytes)
          yield* routed("proxy", target.entry.hostId)
          yield* peers.forwardHttp(target.entry, req, body, res)
        })

      const forward = (req: http.IncomingMessage, res: http.ServerResponse, url: string) =>
        Effect.gen(function*() {
          const route = yield* parseHostRoute(url)!
          const fromPeer = peers.isFromPeer(req.headers)
          if (fromPeer) yield* peers.verify(req.headers)
          const token = bearerToken(req.headers.authorization, route.queryToken)
          yield* auth.authorize(token, route.hostId)
          if (route.path === "/_whoowns") {
            return yield* router.locate(route.hostId, { fromPeer }).pipe(
              Effect.flatMap((target) =>
                json(res, 200, target._tag === "Local"
                  ? { region: config.region, machineId: config.machineId }
                  : { region: target.region, machineId: target.machineId })
              ),
              Effect.catchTag("HostOffline", (e) => json(res, 404, { error: "host_offline", message: e.message }))
            )
          }
          const target = yield* router.locate(route.hostId, { fromPeer })
          if (target._tag === "Remote") return yield* forwardRemote(req, res, target)
          const tunnel = target.tunnel
          const body = yield* readBody(req, config.maxBodyBytes)
          yield* routed("local", route.hostId)
          const response = yield* tunnel.request({
            method: req.method ?? "GET",
            path: route.query === "" ? route.path : `${route.path}?${route.query}`,
            headers: requestHeadersForHost(req.headers, req.socket.remoteAddress, {
              drop: [PeerHeaders.hop, PeerHeaders.secret]
            }),
            body
          })
          if (response.status < 200) {
            // An interim status is not an answer: the client would wait for one that never comes.
            return yield* json(res, 502, { error: "bad_response", message: `the host answered with status ${response.status}` })
          }
          yield* Effect.try(() => {
            const noBody = req.method === "HEAD" || response.status === 204 || response.status === 304
            res.writeHead(response.status, {
              ...responseHeadersForClient(response.headers),
              ...(noBody ? {} : { "content-length": response.body.length })
            })
            res.end(noBody ? undefined : response.body)
          }).pipe(
            Effect.catchAll((cause) =>
              Effect.logWarning("request.bad_response_from_host", String(cause)).pipe(
                Effect.zipRight(json(res, 502, { error: "bad_response", message: "the host sent a response that is not valid HTTP" }))
              )
            )
          )
        }).pipe(
          Effect.catchAll((e) => fail(res, e))
        )

      const handleRequest = (req: http.IncomingMessage, res: http.ServerResponse): Effect.Effect<void> => {
        const url = req.url ?? "/"
        const q = url.indexOf("?")
        const pathname = q === -1 ? url : url.slice(0, q)
        if (url.startsWith("/hosts/")) return forward(req, res, url)
        switch (pathname) {
          case "/health":
            return json(res, 200, { ok: true, region: config.region, machineId: config.machineId })
          case "/ready":
            return draining.isDraining()
              ? json(res, 503, { ready: false, reason: "draining" })
              : !directory.isAvailable()
              ? json(res, 503, { ready: false, reason: "directory_unavailable" })
              : json(res, 200, { ready: true, tunnels: registry.size() })
          case "/tunnel":
            return json(res, 426, { error: "upgrade_required", message: "open /tunnel as a WebSocket" })
          case "/metrics":
            return metrics(res)
          default:
            return fail(res, new RouteNotFound({ path: pathname }))
        }
      }

      const reject = (socket: Duplex, error: HttpError) =>
        Effect.sync(() => {
          const body = httpErrorBody(error)
          if (socket.writable) {
            socket.end(
              `HTTP/1.1 ${error.status} ${http.STATUS_CODES[error.status] ?? ""}\r\n` +
                `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
            )
          }
        })

      const handleTunnel = (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: string) =>
        Effect.gen(function*() {
          const q = url.indexOf("?")
          const params = new URLSearchParams(q === -1 ? "" : url.slice(q + 1))
          const rawHostId = params.get("hostId") ?? ""
          const token = bearerToken(req.headers.authorization, takeToken(q === -1 ? "" : url.slice(q + 1)).token)
          const conn = yield* upgrade(req, socket, head)
          const refuse = (e: ClientError) => {
            const [code, reason] = toTunnelClose(e)
            return Effect.logWarning("tunnel.refused").pipe(
              Effect.zipRight(RelayMetrics.registration(
                e._tag === "Forbidden" ? "refused_forbidden" : e._tag === "BadHostId" ? "refused_bad_host_id" : "refused_unauthorized"
              )),
              Effect.annotateLogs({ hostId: rawHostId, code, reason: e.message }),
              Effect.zipRight(conn.close(code, reason))
            )
          }
          // Checked before auth (no work for a relay that is leaving) and again by the registry after it.
          if (draining.isDraining()) return yield* refuseWhileDraining(conn, rawHostId)
          const hostId = decodeHostId(rawHostId)
          if (Either.isLeft(hostId)) return yield* refuse(new BadHostId({ input: rawHostId }))
          yield* auth.authorize(token, hostId.right).pipe(
            Effect.matchEffect({
              onFailure: refuse,
              onSuccess: () => registry.register(hostId.right, conn)
            })
          )
        })

      const handleClientSocket = (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: string) =>
        Effect.gen(function*() {
          const route = yield* parseHostRoute(url)!
          const fromPeer = peers.isFromPeer(req.headers)
          if (fromPeer) yield* peers.verify(req.headers)
          yield* auth.authorize(bearerToken(req.headers.authorization, route.queryToken), route.hostId)
          const target = yield* router.locate(route.hostId, { fromPeer })
          if (target._tag === "Remote") {
            if (config.routing === "fly-replay") {
              yield* routed("fly-replay", route.hostId)
              return yield* Effect.sync(() => {
                if (socket.writable) {
                  socket.end(`HTTP/1.1 200 OK\r\nfly-replay: ${replayHeader(target)}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`)
                }
              })
            }
            yield* routed("proxy", route.hostId)
            const upstream = yield* peers.connectSocket(target.entry, req).pipe(
              Effect.catchTag("ConnectError", (e) =>
                Effect.zipRight(
                  reject(socket, { status: e.status ?? 502, error: "peer_refused", message: "the relay holding this host refused the WebSocket" }),
                  Effect.interrupt
                ))
            )
            const client = yield* upgrade(req, socket, head)
            return yield* splice(client, upstream)
          }
          yield* routed("local", route.hostId)
          const client = yield* upgrade(req, socket, head)
          yield* target.tunnel.openChannel(client, {
            path: route.path,
            ...(route.query === "" ? {} : { query: route.query }),
            headers: requestHeadersForHost(req.headers, req.socket.remoteAddress, {
              drop: ["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", PeerHeaders.hop, PeerHeaders.secret]
            })
          })
        }).pipe(
          Effect.scoped,
          Effect.catchAll((e) => reject(socket, toHttpError(e)))
        )

      const handleUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): Effect.Effect<void> => {
        const url = req.url ?? "/"
        if (url === "/tunnel" || url.startsWith("/tunnel?")) return handleTunnel(req, socket, head, url)
        if (url.startsWith("/hosts/")) return handleClientSocket(req, socket, head, url)
        return reject(socket, toHttpError(new RouteNotFound({ path: url.split("?")[0]! })))
      }

      const server = http.createServer()
      // Load balancers and peer relays keep connections to the relay open between requests; the
      // relay must not be the side that closes an idle one first (a request sent on it just as
      // it closes fails with a reset). 75 s is above the 60 s idle timeout common to proxies.
      server.keepAliveTimeout = 75_000
      server.headersTimeout = 80_000
      /** Anything unexpected (a defect) still answers the client, and is logged. */
      const guardRequest = (res: http.ServerResponse) =>
        Effect.catchAllCause((cause: Cause.Cause<never>) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.void
            : Effect.logError("request.defect", cause).pipe(
              Effect.zipRight(json(res, 500, { error: "internal", message: "internal error" }))
            )
        )

      server.on("request", (req, res) => {
        const started = performance.now()
        const counted = req.url?.startsWith("/hosts/") === true
        const fiber = run(handleRequest(req, res).pipe(guardRequest(res)))
        res.on("close", () => {
          const finished = res.writableFinished
          if (!finished) fiber.unsafeInterruptAsFork(FiberId.none)
          // 499: the client went away before its answer was written (nginx's convention).
          if (counted) RelayMetrics.recordRequest(finished ? res.statusCode : 499, (performance.now() - started) / 1000)
        })
      })
      server.on("upgrade", (req, socket, head) => {
        // A client that resets TCP during the upgrade must not take the process down.
        socket.on("error", () => {})
        run(handleUpgrade(req, socket, head).pipe(
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.void
              : Effect.logError("upgrade.defect", cause).pipe(Effect.zipRight(Effect.sync(() => socket.destroy())))
          )
        ))
      })
      server.on("clientError", (_error, socket) => {
        if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
      })

      const stopAccepting = Effect.sync(() => {
        if (server.listening) server.close()
      })
      const closeConnections = Effect.sync(() => server.closeAllConnections())

      const port = yield* Effect.acquireRelease(
        Effect.async<number, Error>((resume) => {
          const onError = (error: Error) => resume(Effect.fail(error))
          server.once("error", onError)
          // A deploy sends a relay every host of the one draining at once: a deep accept queue
          // (Node's default is 511; the kernel caps it at net.core.somaxconn) keeps that burst from
          // overflowing it, which clients see as refused or reset connections.
          server.listen({ port: config.port, host: config.bindHost, backlog: 4096 }, () => {
            server.off("error", onError)
            resume(Effect.succeed((server.address() as { port: number }).port))
          })
        }).pipe(Effect.orDie),
        () => Effect.zipRight(stopAccepting, closeConnections)
      )
      yield* address.set({ port, internalUrl: internalUrlFor(config.internalUrl, port) })
      yield* Effect.logInfo("relay.listening").pipe(Effect.annotateLogs({ port, bindHost: config.bindHost }))
      return RelayServer.of({ server, port, stopAccepting, closeConnections })
    })
  )
}

const noBody = Buffer.alloc(0)

/** Reads a request body, refusing anything over `limit` bytes before reading it where the length is declared. */
const readBody = (req: http.IncomingMessage, limit: number) =>
  Effect.async<Buffer, PayloadTooLarge | BadRequest>((resume) => {
    const declared = Number(req.headers["content-length"] ?? "0")
    if (declared > limit) {
      return resume(Effect.fail(new PayloadTooLarge({ limit })))
    }
    if (declared === 0 && req.headers["transfer-encoding"] === undefined) {
      // No body (most GETs): nothing to wait for.
      req.resume()
      return resume(Effect.succeed(noBody))
    }
    const chunks: Array<Buffer> = []
    let size = 0
    const cleanup = () => {
      req.off("data", onData)
      req.off("end", onEnd)
      req.off("error", onError)
      req.off("close", onClose)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        cleanup()
        resume(Effect.fail(new PayloadTooLarge({ limit })))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resume(Effect.succeed(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)))
    }
    const onError = (error: Error) => {
      cleanup()
      resume(Effect.fail(new BadRequest({ reason: `could not read the request body: ${error.message}` })))
    }
    const onClose = () => {
      if (!req.complete) onError(new Error("client went away"))
    }
    req.on("data", onData)
    req.on("end", onEnd)
    req.on("error", onError)
    req.on("close", onClose)
    return Effect.sync(cleanup)
  })

