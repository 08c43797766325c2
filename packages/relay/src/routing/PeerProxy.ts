import { BodyLimit, KeepAliveRetry, Transport } from "@effect-relay/protocol"
import { Context, Effect, Layer, Option, Redacted, type Scope } from "effect"
import { timingSafeEqual } from "node:crypto"
import * as http from "node:http"
import { RelayConfig } from "../config/RelayConfig.js"
import type { DirectoryEntry } from "../directory/Directory.js"
import { requestHeadersForPeer, responseHeadersForClient } from "../http/ForwardHeaders.js"
import { isConnectFailure, PeerForbidden, PeerUnreachable } from "./RoutingErrors.js"

/** Headers that mark a request one relay forwards to another. */
export const PeerHeaders = {
  /** Loop guard: a relay receiving this never forwards the request again. */
  hop: "x-effect-relay-hop",
  /** The shared `RELAY_PEER_SECRET`. */
  secret: "x-effect-relay-peer-secret"
} as const

/**
 * Relay-to-relay proxying (routing mode `proxy`): forwards a client's HTTP
 * request or WebSocket to the relay that holds the host, over its internal
 * address, marked with the loop guard and authenticated with the peer secret.
 */
export class PeerProxy extends Context.Tag("effect-relay/PeerProxy")<PeerProxy, {
  /** Whether a request came from another relay (carries the loop guard). */
  readonly isFromPeer: (headers: http.IncomingHttpHeaders) => boolean
  /** A request with the loop guard must carry the right secret, else 403. */
  readonly verify: (headers: http.IncomingHttpHeaders) => Effect.Effect<void, PeerForbidden>
  /**
   * Sends the request to the owner and streams its answer back to `res`. The body is `body` when
   * it was read already; otherwise it is streamed from `req` once the connection to the owner is
   * made (`onBodyStart` is called then: from that moment the request cannot go anywhere else).
   */
  readonly forwardHttp: (
    entry: DirectoryEntry,
    req: http.IncomingMessage,
    body: Buffer | undefined,
    res: http.ServerResponse,
    onBodyStart?: () => void
  ) => Effect.Effect<void, PeerUnreachable>
  /** Opens the same WebSocket on the owner relay; fails (with its status) when the owner refuses. */
  readonly connectSocket: (entry: DirectoryEntry, req: http.IncomingMessage) => Effect.Effect<Transport.Transport, PeerUnreachable | Transport.ConnectError, Scope.Scope>
}>() {
  static layer = Layer.scoped(
    PeerProxy,
    Effect.gen(function*() {
      // A peer secret is required with a shared directory: `checkRelaySettings` refuses to start without one.
      const config = yield* RelayConfig
      const secret = Option.map(config.peerSecret, (s) => Buffer.from(Redacted.value(s)))
      // Idle sockets retire after 30 s, well before a peer (75 s keep-alive) would close them.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 30_000 })
      yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))

      const guardHeaders = (): Record<string, string> => ({
        [PeerHeaders.hop]: "1",
        ...Option.match(config.peerSecret, { onNone: () => ({}), onSome: (s) => ({ [PeerHeaders.secret]: Redacted.value(s) }) })
      })

      const isFromPeer = (headers: http.IncomingHttpHeaders) => headers[PeerHeaders.hop] !== undefined

      const verify = (headers: http.IncomingHttpHeaders) =>
        Effect.suspend(() => {
          const given = headers[PeerHeaders.secret]
          if (Option.isNone(secret) || typeof given !== "string") return Effect.fail(new PeerForbidden())
          const buffer = Buffer.from(given)
          return buffer.length === secret.value.length && timingSafeEqual(buffer, secret.value)
            ? Effect.void
            : Effect.fail(new PeerForbidden())
        })

      // The client's address, scheme and host as this relay established them: the peer passes
      // them on to the host as they are (`requestHeadersForHost`'s `fromPeer`).
      const peerHeaders = (req: http.IncomingMessage) => requestHeadersForPeer(req.headers, req.socket.remoteAddress, config.trustProxy)

      const forwardHttp = (entry: DirectoryEntry, req: http.IncomingMessage, body: Buffer | undefined, res: http.ServerResponse, onBodyStart?: () => void) =>
        KeepAliveRetry.retryOnStaleSocket(forwardOnce(entry, req, body ?? streamedBody(req), res, onBodyStart)).pipe(Effect.tapError(logUnreachable))

      /** How the body goes: read already (`Buffer`), none at all, or streamed from the client. */
      const streamedBody = (req: http.IncomingMessage): Buffer | "stream" => (BodyLimit.hasNoBody(req) ? Buffer.alloc(0) : "stream")

      const forwardOnce = (entry: DirectoryEntry, req: http.IncomingMessage, body: Buffer | "stream", res: http.ServerResponse, onBodyStart?: () => void) =>
        Effect.async<void, PeerUnreachable>((resume) => {
          let upstream: http.ClientRequest
          const length = body === "stream" ? BodyLimit.declaredLength(req) : body.length
          try {
            upstream = http.request(`${entry.internalUrl}${req.url ?? "/"}`, {
              method: req.method ?? "GET",
              agent,
              headers: {
                ...peerHeaders(req),
                ...guardHeaders(),
                ...(length !== undefined ? { "content-length": String(length) } : { "transfer-encoding": "chunked" })
              }
            })
          } catch (cause) {
            return resume(Effect.fail(new PeerUnreachable({ owner: entry.owner, cause })))
          }
          // A streamed body is read from the client only once the owner's connection is made: a
          // refused connection leaves it unread, for the next owner.
          let started = false
          const startBody = () => {
            if (started || body !== "stream") return
            started = true
            onBodyStart?.()
            req.pipe(upstream)
            req.once("close", () => {
              if (!req.complete) upstream.destroy()
            })
          }
          if (body === "stream") {
            upstream.once("socket", (socket) => {
              if (socket.connecting) socket.once("connect", startBody)
              else startBody()
            })
          }
          let answered = false
          upstream.on("response", (answer) => {
            answered = true
            res.writeHead(answer.statusCode ?? 502, responseHeadersForClient(answer.headers as Record<string, string | Array<string>>))
            answer.pipe(res)
            answer.on("end", () => resume(Effect.void))
            answer.on("error", () => {
              res.destroy()
              resume(Effect.void)
            })
          })
          upstream.on("error", (cause) => {
            if (answered) {
              res.destroy()
              resume(Effect.void)
            } else {
              const staleSocket = !started && KeepAliveRetry.isStaleSocket(upstream, cause)
              resume(Effect.fail(new PeerUnreachable({
                owner: entry.owner,
                cause,
                ...(staleSocket ? { staleSocket } : {}),
                ...(!started && isConnectFailure(cause) ? { notSent: true } : {}),
                ...(started ? { bodyStarted: true } : {})
              })))
            }
          })
          if (body !== "stream") upstream.end(body)
          return Effect.sync(() => upstream.destroy())
        })

      const connectSocket = (entry: DirectoryEntry, req: http.IncomingMessage) => {
        const url = `${entry.internalUrl.replace(/^http/, "ws")}${req.url ?? "/"}`
        const headers: Record<string, string> = { ...guardHeaders() }
        // `Host` goes along (the owner routes a host's hostname by it, as this relay did).
        for (const [name, value] of Object.entries(peerHeaders(req))) {
          if (name.startsWith("sec-websocket-")) continue
          headers[name] = Array.isArray(value) ? value.join(", ") : value
        }
        return Transport.connect(url, { headers, timeoutMs: 10_000 }).pipe(
          Effect.catchAllDefect((cause) => Effect.fail(new PeerUnreachable({ owner: entry.owner, cause }))),
          Effect.catchTag("ConnectError", (e): Effect.Effect<never, PeerUnreachable | Transport.ConnectError> =>
            // No WebSocket was opened: nothing of the client's reached the peer.
            e.status === undefined ? Effect.fail(new PeerUnreachable({ owner: entry.owner, cause: e, notSent: true })) : Effect.fail(e)),
          Effect.tapError((e) => (e._tag === "PeerUnreachable" ? logUnreachable(e) : Effect.void))
        )
      }

      return PeerProxy.of({ isFromPeer, verify, forwardHttp, connectSocket })
    })
  )
}

/** The client is told only that the owner cannot be reached; which relay, where and why is logged. */
const logUnreachable = (e: PeerUnreachable) =>
  Effect.logWarning("peer.unreachable").pipe(
    Effect.annotateLogs({ owner: e.owner, cause: e.cause instanceof Error ? e.cause.message : String(e.cause) })
  )

/**
 * Carries frames both ways between two WebSockets until one closes; the other closes with the same
 * code. A side whose peer has more than `bufferBytes` queued is not read until that drains.
 */
export const splice = (a: Transport.Transport, b: Transport.Transport, bufferBytes: number): Effect.Effect<void> => {
  const oneWay = (from: Transport.Transport, to: Transport.Transport) => {
    let paused = false
    from.onMessage((frame) => {
      to.unsafeSend(frame)
      if (paused || to.bufferedAmount() <= bufferBytes) return
      paused = true
      from.pause()
      to.onDrain(() => {
        paused = false
        from.resume()
      })
    })
    return Effect.flatMap(from.closed, (info) => to.close(info.code, info.reason))
  }
  return Effect.all([oneWay(a, b), oneWay(b, a)], { concurrency: 2, discard: true })
}
