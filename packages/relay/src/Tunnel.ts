import {
  CloseCodes,
  CloseReasons,
  Deadlines,
  decodeBytes,
  encodeBytes,
  HostToRelayCodec,
  HttpRequest,
  RelayToHostCodec,
  type Transport,
  WsClose,
  WsFrame,
  WsOpen,
  type HostId,
  type Headers,
  type RelayToHost
} from "@effect-relay/protocol"
import { Deferred, Effect, Exit, type Fiber, FiberId, Option, Runtime, Scope, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { RequestTimeout, TooManyPendingRequests, TunnelClosed } from "./Errors.js"
import { RelayConfig } from "./RelayConfig.js"

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

/** One host's tunnel while it is open. Its life is the scope it was made in. */
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
  /** Whether the tunnel has ended (its transport closed or it timed out). */
  readonly hasEnded: Effect.Effect<boolean>
  /** One ping period (for a registry that pings all its tunnels): false once the tunnel timed out. */
  readonly pingTick: Effect.Effect<boolean>
  /** Decides the close code the finalizer will use (for example 1000 when replaced). */
  readonly closeWith: (code: number, reason: string) => Effect.Effect<void>
  readonly pendingCount: () => number
  readonly channelCount: () => number
}

const send = (conn: Conn, message: RelayToHost) => conn.send(RelayToHostCodec.encode(message))

interface Waiting {
  readonly resume: (result: Effect.Effect<ForwardResponse, TunnelClosed | RequestTimeout>) => void
  cancelTimeout: () => void
}

/**
 * Opens a tunnel over an accepted transport. Its finalizers fail the pending
 * requests (502), close the client channels, and close the transport: with
 * the code chosen by `closeWith` (replacement, ping timeout, refusal), or
 * else, since a scope closing from outside means this relay is going away,
 * with a drain frame, then up to the flush window for in-flight responses to
 * arrive (or the host to close), then close 4001. Client WebSockets on a
 * draining tunnel are closed 1012 (service restart).
 */
export interface TunnelHooks {
  /** Runs once the drain frame went out (the registry counts these for its `drain.notified` event). */
  readonly onDrainNotified: () => void
  /** Runs on each pong: the host is alive (the registry refreshes the directory entry). Forked. */
  readonly onPong: Effect.Effect<void>
  /**
   * Runs (forked) when the tunnel ends on its own: the host closed it or stopped answering pings.
   * Whoever holds the tunnel's scope closes it then; nothing waits in a fiber for this.
   */
  readonly onEnded: (info: CloseInfo) => Effect.Effect<void>
}

const noHooks: TunnelHooks = { onDrainNotified: () => {}, onPong: Effect.void, onEnded: () => Effect.void }

/** The same drain frame for every tunnel: encoded once. */
const drainFrame = RelayToHostCodec.encode({ _tag: "drain", reason: "relay draining" })

export interface TunnelOptions {
  readonly hooks?: TunnelHooks
  /** Fork a ping fiber for this tunnel (default). A registry pings all its tunnels from one fiber instead. */
  readonly ownPinger?: boolean
  readonly tunnelId?: string
}

export const make = (
  hostId: HostId,
  conn: Conn,
  options: TunnelOptions = {}
): Effect.Effect<Tunnel, never, Scope.Scope | RelayConfig> =>
  Effect.gen(function*() {
    const config = yield* RelayConfig
    const hooks = options.hooks ?? noHooks
    const tunnelId = options.tunnelId ?? randomUUID()
    const connectedAt = Date.now()
    /** Requests waiting for their response: how to resume each, and how to cancel its timeout. */
    const pending = new Map<string, Waiting>()
    const deadlines = yield* Deadlines.make(config.requestTimeoutMs)
    const channels = new Map<string, Conn>()
    const ended = yield* Deferred.make<CloseInfo>()
    let seq = 0
    let missedPongs = 0
    let closing = false
    let intent: Option.Option<CloseInfo> = Option.none()
    let onSettled: () => void = () => {}

    const closeWith = (code: number, reason: string) =>
      Effect.sync(() => {
        if (Option.isNone(intent)) intent = Option.some({ code, reason })
      })

    // What a frame needs done beyond the synchronous part (logs, channel closes, the pong hook);
    // a response, the hot path, is handled in the socket's callback and returns Effect.void.
    const onFrame = HostToRelayCodec.handler((message): Effect.Effect<void> => {
      switch (message._tag) {
        case "pong":
          missedPongs = 0
          return hooks.onPong
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

    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    /** The tunnel ended by itself (transport closed, or ping timeout): once. */
    let endedOnce = false
    const end = (info: CloseInfo) => {
      if (endedOnce) return
      endedOnce = true
      Deferred.unsafeDone(ended, Exit.succeed(info))
      // Closed by its finalizer (the scope is already closing): nothing more to do.
      if (!closing) runFork(hooks.onEnded(info))
    }
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
    let transportClosed = false
    conn.onClose((info) => {
      transportClosed = true
      end(info)
    })

    /** One ping period: close 1001 after too many missed pongs, else ping. False once timed out. */
    const pingTick = Effect.suspend(() => {
      if (missedPongs >= config.pingMaxMissed) {
        return Effect.logWarning("tunnel.ping_timeout").pipe(
          Effect.annotateLogs({ missedPongs, hostId, tunnelId }),
          Effect.zipRight(closeWith(CloseCodes.PingTimeout, CloseReasons.PingTimeout)),
          Effect.zipRight(Effect.sync(() => end({ code: CloseCodes.PingTimeout, reason: CloseReasons.PingTimeout }))),
          Effect.as(false)
        )
      }
      missedPongs++
      return Effect.as(Effect.sync(() => conn.unsafeSend(RelayToHostCodec.encode({ _tag: "ping", ts: Date.now() }))), true)
    })
    // A registry with many tunnels pings them all from one fiber; a tunnel on its own pings itself.
    if (options.ownPinger ?? true) {
      yield* Effect.forkScoped(
        Effect.sleep(config.pingIntervalMs).pipe(Effect.zipRight(pingTick), Effect.repeat({ while: (alive) => alive }))
      )
    }

    /** The fibers carrying client WebSockets (the callers of openChannel): interrupted at the end. */
    const channelFibers = new Set<Fiber.RuntimeFiber<unknown, unknown>>()

    // Scope.addFinalizer, not Effect.addFinalizer: restoring the fiber refs of the moment the
    // finalizer was added costs two diffs and two patches of them per tunnel, which a drain of
    // thousands of tunnels pays all at once.
    yield* Scope.addFinalizer(
      yield* Effect.scope,
      Effect.suspend(() => {
        closing = true
        // Closed from outside (no intent, transport still open): this relay is going away. Tell
        // the host in-band, give it the flush window to finish in-flight responses and close by
        // itself, then close 4001. All of it is synchronous for an idle tunnel, which is nearly
        // every tunnel of a large drain.
        const drain = !transportClosed && Option.isNone(intent)
        if (drain && conn.unsafeSend(drainFrame)) hooks.onDrainNotified()
        if (drain && pending.size > 0) {
          return Effect.gen(function*() {
            const settled = yield* Deferred.make<void>()
            onSettled = () => {
              if (pending.size === 0) Deferred.unsafeDone(settled, Exit.void)
            }
            // Done early when the host closes or has answered everything in flight.
            yield* Effect.raceFirst(conn.closed, Deferred.await(settled)).pipe(
              Effect.interruptible,
              Effect.timeout(config.drainFlushMs),
              Effect.ignore
            )
            yield* finish
          })
        }
        return finish
      })
    )

    /** The end of the finalizer: fail what still waits, close client channels, close the transport. */
    const finish = Effect.suspend(() => {
      for (const [id, waiting] of pending) settle(id, waiting, Effect.fail(new TunnelClosed({ hostId })))
      const [clientCode, clientReason] = Option.isNone(intent)
        ? [CloseCodes.ServiceRestart, "relay restarting"]
        : [CloseCodes.Internal, "tunnel closed"]
      const clients = [...channels.values()]
      channels.clear()
      for (const fiber of channelFibers) fiber.unsafeInterruptAsFork(FiberId.none)
      channelFibers.clear()
      const { code, reason } = Option.getOrElse(intent, () => ({ code: CloseCodes.Drain, reason: CloseReasons.Draining }))
      const closeTunnel = transportClosed ? Effect.void : conn.close(code, reason)
      return clients.length === 0
        ? closeTunnel
        : Effect.zipRight(Effect.forEach(clients, (client) => client.close(clientCode, clientReason), { discard: true }), closeTunnel)
    })

    /** Ends one waiting request (response, timeout, or the tunnel closing); at most once. */
    function settle(id: string, waiting: Waiting, result: Effect.Effect<ForwardResponse, TunnelClosed | RequestTimeout>) {
      if (pending.get(id) !== waiting) return
      pending.delete(id)
      waiting.cancelTimeout()
      waiting.resume(result)
      onSettled()
    }

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
          onSettled()
        })
      })

    const openChannel = (client: Conn, open: ChannelOpen) =>
      Effect.suspend(() => {
        if (closing) return client.close(CloseCodes.Internal, "tunnel closed")
        const id = `c${++seq}`
        channels.set(id, client)
        const toHost = client.messages.pipe(
          Stream.runForEach((data) =>
            send(
              conn,
              typeof data === "string"
                ? { _tag: "ws:frame", id, data } satisfies WsFrame
                : { _tag: "ws:frame", id, data: Buffer.from(data).toString("base64"), encoding: "base64" } satisfies WsFrame
            ).pipe(Effect.ignore)
          ),
          Effect.zipRight(client.closed),
          Effect.flatMap((info) =>
            channels.delete(id)
              ? Effect.ignore(send(conn, WsClose.make({ id, code: info.code, reason: info.reason }, true)))
              : Effect.void
          )
        )
        return send(conn, WsOpen.make({ id, path: open.path, ...(open.query ? { query: open.query } : {}), headers: open.headers }, true)).pipe(
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
      ended: Deferred.await(ended),
      hasEnded: Deferred.isDone(ended),
      closeWith,
      pingTick,
      pendingCount: () => pending.size,
      channelCount: () => channels.size
    } satisfies Tunnel
  })
