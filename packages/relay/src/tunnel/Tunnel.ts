/**
 * One host's tunnel on this relay, for the life of the scope it is made in: requests go out as
 * frames and their responses come back by id, client WebSockets ride along as channels, pings
 * check the host is alive. Its states and who moves them are drawn in the package README:
 *
 * - serving: made; takes requests and channels.
 * - ended: the host closed the connection, or stopped answering pings. Whoever holds the scope
 *   learns it through `onEnded` and closes the scope.
 * - closing: the scope's finalizer runs. With no close intent (`closeWith`) and the host still
 *   there, the relay is going away: drain frame, up to the flush window for in-flight responses,
 *   then close 4001. With an intent (replaced 1000, ping timeout 1001, directory down 1011), that
 *   code. Either way pending requests fail (502) and client channels close.
 *
 * Its state is plain fields, not Refs or fibers: an idle tunnel must stay small (tens of KB, see
 * the README's benchmarks), and frames are handled on the socket's own callback.
 */
import {
  CloseCodes,
  CloseReasons,
  Deadlines,
  decodeBytes,
  encodeBytes,
  HostToRelayCodec,
  type HttpRequest,
  RelayToHostCodec,
  type Transport,
  WsClose,
  type WsFrame,
  WsOpen,
  type HostId,
  type Headers,
  type RelayToHost
} from "@effect-relay/protocol"
import { Deferred, Effect, Exit, type Fiber, FiberId, Option, Runtime, Scope, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { RelayConfig } from "../config/RelayConfig.js"
import { RequestTimeout, TooManyPendingRequests, TunnelClosed } from "./TunnelErrors.js"

type Conn = Transport.Transport
type CloseInfo = Transport.CloseInfo

/** A client's HTTP request as it goes into a tunnel. */
export interface ForwardRequest {
  readonly method: string
  /** Path and query as the host's local service should see them. */
  readonly path: string
  readonly headers: Headers
  readonly body: Uint8Array
}

/** The host's answer. */
export interface ForwardResponse {
  readonly status: number
  readonly headers: Headers
  readonly body: Buffer
}

export interface ChannelOpen {
  readonly path: string
  readonly query?: string
  readonly headers: Headers
}

export interface Tunnel {
  readonly hostId: HostId
  readonly tunnelId: string
  readonly connectedAt: number
  /** Sends a request to the host and waits for its response. */
  readonly request: (req: ForwardRequest) => Effect.Effect<ForwardResponse, TunnelClosed | RequestTimeout | TooManyPendingRequests>
  /** Carries a client WebSocket to the host's local WebSocket endpoint until either side closes. */
  readonly openChannel: (client: Conn, open: ChannelOpen) => Effect.Effect<void>
  /** Completes when the tunnel ends on its own: the host closed it or stopped answering pings. */
  readonly ended: Effect.Effect<CloseInfo>
  /** Whether the tunnel ended on its own. */
  readonly isEnded: () => boolean
  /** One ping period: pings the host, or ends the tunnel (1001) after too many missed pongs. False once ended. */
  readonly pingTick: Effect.Effect<boolean>
  /** Whether a pong came since the last call: the registry heartbeats the directory at most once a ping period. */
  readonly takePong: () => boolean
  /** Sends the drain frame, once; true when this call sent it. */
  readonly notifyDrain: () => boolean
  /** Decides the close code the finalizer will use (for example 1000 when replaced). */
  readonly closeWith: (code: number, reason: string) => Effect.Effect<void>
  readonly pendingCount: () => number
  readonly channelCount: () => number
}

export interface TunnelOptions {
  readonly tunnelId?: string
  /** Ping from a fiber of this tunnel's own (default). A registry pings all its tunnels from one fiber instead. */
  readonly pingSelf?: boolean
  /** How to start a fiber from the socket's callback (a registry passes its own, tied to its scope). */
  readonly run?: (effect: Effect.Effect<void>) => unknown
  /**
   * Called once when the tunnel ends on its own (not when its scope closes it): whoever holds
   * the scope closes it then. Runs on the socket's callback: it must not block or throw.
   */
  readonly onEnded?: (info: CloseInfo) => void
}

interface Waiting {
  readonly resume: (result: Effect.Effect<ForwardResponse, TunnelClosed | RequestTimeout>) => void
  cancelTimeout: () => void
}

type RequestError = TunnelClosed | RequestTimeout

/** The same drain frame for every tunnel: encoded once. */
const drainFrame = RelayToHostCodec.encode({ _tag: "drain", reason: "relay draining" })

const wsFrame = (id: string, data: string | Uint8Array): WsFrame =>
  typeof data === "string"
    ? { _tag: "ws:frame", id, data }
    : { _tag: "ws:frame", id, data: Buffer.from(data).toString("base64"), encoding: "base64" }

export const make = (
  hostId: HostId,
  conn: Conn,
  options: TunnelOptions = {}
): Effect.Effect<Tunnel, never, Scope.Scope | RelayConfig> =>
  Effect.gen(function*() {
    const config = yield* RelayConfig
    const scope = yield* Effect.scope
    const runFork = options.run ?? Runtime.runFork(yield* Effect.runtime<never>())
    const tunnelId = options.tunnelId ?? randomUUID()
    const connectedAt = Date.now()
    const deadlines = yield* Deadlines.make(config.requestTimeoutMs)
    const endedSignal = yield* Deferred.make<CloseInfo>()

    // ---- state (see the module comment for who moves it) ----
    /** Requests waiting for their response: how to resume each, and how to cancel its timeout. */
    const pending = new Map<string, Waiting>()
    const channels = new Map<string, Conn>()
    /** The fibers carrying client WebSockets (the callers of openChannel): interrupted at the end. */
    const channelFibers = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
    let seq = 0
    let missedPongs = 0
    let ponged = false
    let drainSent = false
    /** Set once the tunnel ended on its own. */
    let end: CloseInfo | undefined
    /** Set once the scope's finalizer started. */
    let closing = false
    /** The close code chosen before closing; none means a drain (4001). */
    let intent: Option.Option<CloseInfo> = Option.none()
    /** While a draining finalizer waits for in-flight responses: called as each one settles. */
    let onSettled: (() => void) | undefined

    const markEnded = (info: CloseInfo) => {
      if (end !== undefined) return
      end = info
      Deferred.unsafeDone(endedSignal, Exit.succeed(info))
      if (!closing) options.onEnded?.(info)
    }

    /** Ends one waiting request (response, timeout, or the tunnel closing); at most once. */
    const settle = (id: string, waiting: Waiting, result: Effect.Effect<ForwardResponse, RequestError>) => {
      if (pending.get(id) !== waiting) return
      pending.delete(id)
      waiting.cancelTimeout()
      waiting.resume(result)
      onSettled?.()
    }

    // ---- frames from the host ----
    // What a frame needs done beyond the synchronous part (logs, channel closes); a response, the
    // hot path, is handled in the socket's callback and returns Effect.void.
    const onFrame = HostToRelayCodec.handler((message): Effect.Effect<void> => {
      switch (message._tag) {
        case "pong":
          missedPongs = 0
          ponged = true
          return Effect.void
        case "http:response": {
          const waiting = pending.get(message.id)
          if (waiting === undefined) {
            // The client went away or the request timed out before the host answered.
            return Effect.logDebug("tunnel.late_response").pipe(Effect.annotateLogs({ requestId: message.id }))
          }
          settle(message.id, waiting, Effect.succeed({
            status: message.status,
            headers: message.headers,
            body: decodeBytes(message.body, message.bodyEncoding)
          }))
          return Effect.void
        }
        case "ws:frame": {
          const client = channels.get(message.id)
          if (client === undefined) return Effect.logDebug("tunnel.unknown_channel").pipe(Effect.annotateLogs({ channelId: message.id }))
          const data = message.encoding === "base64" ? decodeBytes(message.data, "base64") : message.data
          return Effect.ignore(client.send(data))
        }
        case "ws:close": {
          const client = channels.get(message.id)
          if (client === undefined) return Effect.void
          channels.delete(message.id)
          return client.close(message.code ?? CloseCodes.Normal, message.reason)
        }
      }
    })
    conn.onMessage((frame) => {
      let rest: Effect.Effect<void>
      try {
        rest = onFrame(frame)
      } catch (defect) {
        rest = Effect.die(defect)
      }
      // A bug in handling one frame is logged; it must not stop the frames after it.
      if (rest !== Effect.void) runFork(Effect.catchAllDefect(rest, (d) => Effect.logError("tunnel.frame_defect", d)))
    })
    conn.onClose(markEnded)

    // ---- pings ----
    const pingTick = Effect.suspend(() => {
      if (end !== undefined) return Effect.succeed(false)
      if (missedPongs >= config.pingMaxMissed) {
        return Effect.logWarning("tunnel.ping_timeout").pipe(
          Effect.annotateLogs({ missedPongs, hostId, tunnelId }),
          Effect.zipRight(closeWith(CloseCodes.PingTimeout, CloseReasons.PingTimeout)),
          Effect.zipRight(Effect.sync(() => markEnded({ code: CloseCodes.PingTimeout, reason: CloseReasons.PingTimeout }))),
          Effect.as(false)
        )
      }
      missedPongs++
      conn.unsafeSend(RelayToHostCodec.encode({ _tag: "ping", ts: Date.now() }))
      return Effect.succeed(true)
    })
    if (options.pingSelf ?? true) {
      yield* Effect.forkScoped(
        Effect.sleep(config.pingIntervalMs).pipe(Effect.zipRight(pingTick), Effect.repeat({ while: (alive) => alive }))
      )
    }

    const closeWith = (code: number, reason: string) =>
      Effect.sync(() => {
        if (Option.isNone(intent)) intent = Option.some({ code, reason })
      })

    const notifyDrain = () => {
      if (drainSent || end !== undefined) return false
      drainSent = conn.unsafeSend(drainFrame)
      return drainSent
    }

    // ---- the end ----
    /** Fails what still waits, closes client channels, closes the transport. */
    const finish = Effect.suspend(() => {
      onSettled = undefined
      for (const [id, waiting] of pending) settle(id, waiting, Effect.fail(new TunnelClosed({ hostId })))
      const [clientCode, clientReason] = Option.isNone(intent)
        ? [CloseCodes.ServiceRestart, "relay restarting"]
        : [CloseCodes.Internal, "tunnel closed"]
      const clients = [...channels.values()]
      channels.clear()
      for (const fiber of channelFibers) fiber.unsafeInterruptAsFork(FiberId.none)
      channelFibers.clear()
      const { code, reason } = Option.getOrElse(intent, () => ({ code: CloseCodes.Drain, reason: CloseReasons.Draining }))
      return Effect.zipRight(
        Effect.forEach(clients, (client) => client.close(clientCode, clientReason), { discard: true }),
        conn.close(code, reason)
      )
    })

    /** In-flight responses get up to the flush window; done early when the host closes or all are answered. */
    const flush = Effect.gen(function*() {
      const settled = yield* Deferred.make<void>()
      onSettled = () => {
        if (pending.size === 0) Deferred.unsafeDone(settled, Exit.void)
      }
      yield* Effect.raceFirst(conn.closed, Deferred.await(settled)).pipe(
        Effect.interruptible,
        Effect.timeout(config.drainFlushMs),
        Effect.ignore
      )
    })

    // Scope.addFinalizer, not Effect.addFinalizer: restoring the fiber refs of the moment the
    // finalizer was added costs two diffs and two patches of them per tunnel, which a drain of
    // thousands of tunnels pays all at once. An idle tunnel's finalizer is all synchronous.
    yield* Scope.addFinalizer(scope, Effect.suspend(() => {
        closing = true
        const draining = end === undefined && Option.isNone(intent)
        if (draining) notifyDrain()
        return draining && pending.size > 0 ? Effect.zipRight(flush, finish) : finish
      }))

    // ---- requests ----
    // One async step per request: the frame goes out, and the response frame (or the timeout,
    // or the tunnel closing) resumes it. No fiber, Deferred or timer race of its own.
    const request = (req: ForwardRequest) =>
      Effect.async<ForwardResponse, TunnelClosed | RequestTimeout | TooManyPendingRequests>((resume) => {
        if (closing) return resume(Effect.fail(new TunnelClosed({ hostId })))
        if (pending.size >= config.maxPendingPerTunnel) {
          return resume(Effect.fail(new TooManyPendingRequests({ hostId, limit: config.maxPendingPerTunnel })))
        }
        const id = String(++seq)
        const frame = RelayToHostCodec.encode(
          { _tag: "http", id, method: req.method, path: req.path, headers: req.headers, ...(req.body.length > 0 ? encodeBytes(req.body) : {}) } satisfies HttpRequest
        )
        if (!conn.unsafeSend(frame)) return resume(Effect.fail(new TunnelClosed({ hostId })))
        const waiting: Waiting = { resume, cancelTimeout: () => {} }
        pending.set(id, waiting)
        waiting.cancelTimeout = deadlines.add(() =>
          settle(id, waiting, Effect.fail(new RequestTimeout({ hostId, ms: config.requestTimeoutMs })))
        )
        // The client went away: forget the request (its response, if one comes, is dropped).
        return Effect.sync(() => {
          if (pending.get(id) !== waiting) return
          pending.delete(id)
          waiting.cancelTimeout()
          onSettled?.()
        })
      })

    // ---- client WebSocket channels ----
    const send = (message: RelayToHost) => conn.send(RelayToHostCodec.encode(message))

    const openChannel = (client: Conn, open: ChannelOpen) =>
      Effect.suspend(() => {
        if (closing) return client.close(CloseCodes.Internal, "tunnel closed")
        const id = `c${++seq}`
        channels.set(id, client)
        const toHost = client.messages.pipe(
          Stream.runForEach((data) => Effect.ignore(send(wsFrame(id, data)))),
          Effect.zipRight(client.closed),
          Effect.flatMap((info) =>
            channels.delete(id) ? Effect.ignore(send(WsClose.make({ id, code: info.code, reason: info.reason }, true))) : Effect.void
          )
        )
        return send(WsOpen.make({ id, path: open.path, ...(open.query ? { query: open.query } : {}), headers: open.headers }, true)).pipe(
          Effect.matchEffect({
            onFailure: () => Effect.zipRight(Effect.sync(() => channels.delete(id)), client.close(CloseCodes.Internal, "tunnel closed")),
            onSuccess: () =>
              Effect.withFiberRuntime<void>((fiber) => {
                channelFibers.add(fiber)
                return Effect.ensuring(toHost, Effect.sync(() => channelFibers.delete(fiber)))
              })
          })
        )
      })

    return {
      hostId,
      tunnelId,
      connectedAt,
      request,
      openChannel,
      ended: Deferred.await(endedSignal),
      isEnded: () => end !== undefined,
      pingTick,
      takePong: () => {
        const was = ponged
        ponged = false
        return was
      },
      notifyDrain,
      closeWith,
      pendingCount: () => pending.size,
      channelCount: () => channels.size
    } satisfies Tunnel
  })
