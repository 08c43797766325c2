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
  Features,
  type FrameError,
  HostToRelayCodec,
  type HttpRequest,
  type HttpResponse,
  LogLimits,
  RelayToHostCodec,
  type Transport,
  type WsFrame,
  type HostId,
  type Headers
} from "@effect-relay/protocol"
import { Deferred, Effect, Exit, type Fiber, FiberId, Option, Runtime, Scope } from "effect"
import { randomUUID } from "node:crypto"
import { RelayConfig } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import * as ByteBudget from "./ByteBudget.js"
import { makeFrameBudget, type Take } from "./FrameBudget.js"
import { BadResponseFromHost, RequestTimeout, TooManyChannels, TooManyPendingRequests, TunnelClosed } from "./TunnelErrors.js"

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
  readonly request: (req: ForwardRequest) => Effect.Effect<ForwardResponse, RequestError | TooManyPendingRequests>
  /** Whether one more client WebSocket fits (checked before the client's upgrade is completed). */
  readonly hasRoomForChannel: () => Effect.Effect<void, TooManyChannels>
  /** Carries a client WebSocket to the host's local WebSocket endpoint until either side closes. */
  readonly openChannel: (client: Conn, open: ChannelOpen) => Effect.Effect<void>
  /** The body bytes this tunnel's requests and responses may hold at once. */
  readonly bodyBudget: () => ByteBudget.ByteBudget
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
  /** Optional frames the host announced it understands (`Features`). */
  readonly features?: ReadonlySet<string>
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
  readonly resume: (result: Effect.Effect<ForwardResponse, RequestError>) => void
  cancelTimeout: () => void
}

export type RequestError = TunnelClosed | RequestTimeout | BadResponseFromHost

/** A client WebSocket carried by the tunnel; `paused` while the tunnel toward the host is too full to take its frames. */
interface Channel {
  readonly client: Conn
  paused: boolean
}

/** The bytes of a response's head: status line and headers as they would be written. */
const headBytes = (headers: Headers): number => {
  let n = 0
  for (const name in headers) {
    const value = headers[name]!
    if (typeof value === "string") n += name.length + value.length + 4
    else for (const v of value) n += name.length + v.length + 4
  }
  return n
}

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
    const channels = new Map<string, Channel>()
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
    /** Made on first use: most tunnels of a large relay are idle. */
    let bodyBudget: ByteBudget.ByteBudget | undefined
    /** Repeated events of this tunnel (bad frames, pauses) are logged a few at a time, made on first use. */
    let logGate: LogLimits.LogGate | undefined
    const cancels = options.features?.has(Features.cancel) === true
    const frames = makeFrameBudget(config.tunnelFramesPerSecond, config.tunnelFrameBurst, conn)

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
        case "http:response":
          return onResponse(message)
        case "ws:frame": {
          const channel = channels.get(message.id)
          if (channel === undefined) return Effect.logDebug("tunnel.unknown_channel").pipe(Effect.annotateLogs({ channelId: message.id }))
          const data = message.encoding === "base64" ? decodeBytes(message.data, "base64") : message.data
          channel.client.unsafeSend(data)
          // A client that does not read cannot hold the relay's memory: its channel closes 1013.
          return channel.client.bufferedAmount() > config.wsBufferBytes ? closeSlowChannel(message.id, channel) : Effect.void
        }
        case "ws:close": {
          const channel = channels.get(message.id)
          if (channel === undefined) return Effect.void
          channels.delete(message.id)
          return channel.client.close(message.code ?? CloseCodes.Normal, message.reason)
        }
      }
    }, (error) => onBadFrame(error))

    /** A response frame: checked, then handed to its request (a late one is dropped). */
    const onResponse = (message: HttpResponse): Effect.Effect<void> => {
      const waiting = pending.get(message.id)
      if (waiting === undefined) {
        // The client went away or the request timed out before the host answered.
        return Effect.logDebug("tunnel.late_response").pipe(Effect.annotateLogs({ requestId: message.id }))
      }
      if (headBytes(message.headers) > config.maxResponseHeaderBytes) {
        RelayMetrics.limitHit("response_head")
        settle(message.id, waiting, Effect.fail(new BadResponseFromHost({ hostId, reason: `head over ${config.maxResponseHeaderBytes} bytes` })))
        return Effect.void
      }
      settle(message.id, waiting, Effect.succeed({
        status: message.status,
        headers: message.headers,
        body: decodeBytes(message.body, message.bodyEncoding)
      }))
      return Effect.void
    }

    /**
     * A frame that does not decode: counted, logged a few times per interval with what was left out,
     * and dropped. One meant for a request still waiting fails that request at once (502).
     */
    const onBadFrame = (error: FrameError): Effect.Effect<void> => {
      RelayMetrics.limitHit("bad_frame")
      if (error.type === "http:response" && error.id !== undefined) {
        const waiting = pending.get(error.id)
        if (waiting !== undefined) settle(error.id, waiting, Effect.fail(new BadResponseFromHost({ hostId, reason: error.problem })))
      }
      return logLimited("tunnel.bad_frame", { problem: error.problem, type: error.type ?? null })
    }

    /** A warning this tunnel's peer can repeat at will: at most 5 lines every 10 s, each saying how many were left out. */
    const logLimited = (event: string, fields: Record<string, unknown>): Effect.Effect<void> => {
      const suppressed = (logGate ??= LogLimits.gate(5, 10_000)).admit()
      if (suppressed === undefined) return Effect.void
      return Effect.logWarning(event).pipe(Effect.annotateLogs({ ...fields, hostId, tunnelId, ...(suppressed > 0 ? { suppressed } : {}) }))
    }

    const closeSlowChannel = (id: string, channel: Channel) => {
      channels.delete(id)
      RelayMetrics.limitHit("ws_buffer")
      conn.unsafeSend(RelayToHostCodec.encode({ _tag: "ws:close", id, code: CloseCodes.TryAgainLater, reason: "client too slow" }))
      return Effect.zipRight(
        channel.client.close(CloseCodes.TryAgainLater, "client too slow"),
        logLimited("tunnel.channel_too_slow", { channelId: id, bufferedBytes: channel.client.bufferedAmount() })
      )
    }
    conn.onMessage((frame) => {
      const budget = frames.take()
      if (budget !== "ok") onOverBudget(budget)
      let rest: Effect.Effect<void>
      try {
        rest = onFrame(frame)
      } catch (defect) {
        rest = Effect.die(defect)
      }
      // A bug in handling one frame is logged; it must not stop the frames after it.
      if (rest !== Effect.void) runFork(Effect.catchAllDefect(rest, (d) => Effect.logError("tunnel.frame_defect", d)))
    })
    conn.onClose((info) => {
      frames.stop()
      markEnded(info)
    })

    /** Over the frame rate: the socket is not read for a moment (done by the budget); kept up too long, closed 1008. */
    const onOverBudget = (budget: Exclude<Take, "ok">) => {
      if (budget === "paused") {
        RelayMetrics.limitHit("tunnel_frame_rate")
        runFork(logLimited("tunnel.frame_rate", { framesPerSecond: config.tunnelFramesPerSecond }))
      }
      if (frames.overSinceMs() < config.tunnelFloodCloseMs || end !== undefined) return
      RelayMetrics.limitHit("tunnel_flood_closed")
      runFork(
        Effect.logWarning("tunnel.flood_closed").pipe(
          Effect.annotateLogs({ hostId, tunnelId, framesPerSecond: config.tunnelFramesPerSecond, overMs: frames.overSinceMs() })
        )
      )
      intent = Option.some({ code: CloseCodes.Policy, reason: "frame rate" })
      markEnded({ code: CloseCodes.Policy, reason: "frame rate" })
    }

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
      const clients = [...channels.values()].map((channel) => channel.client)
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
    /** Tells a host that announced it that request `id` is not waited for anymore. */
    const cancel = (id: string) => {
      if (cancels) conn.unsafeSend(RelayToHostCodec.encode({ _tag: "http:cancel", id }))
    }

    const request = (req: ForwardRequest) =>
      Effect.async<ForwardResponse, RequestError | TooManyPendingRequests>((resume) => {
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
        waiting.cancelTimeout = deadlines.add(() => {
          settle(id, waiting, Effect.fail(new RequestTimeout({ hostId, ms: config.requestTimeoutMs })))
          cancel(id)
        })
        // The client went away: forget the request (its response, if one comes, is dropped).
        return Effect.sync(() => {
          if (pending.get(id) !== waiting) return
          pending.delete(id)
          waiting.cancelTimeout()
          cancel(id)
          onSettled?.()
        })
      })

    // ---- client WebSocket channels ----
    const hasRoomForChannel = () =>
      channels.size < config.maxChannelsPerTunnel
        ? Effect.void
        : Effect.fail(new TooManyChannels({ hostId, limit: config.maxChannelsPerTunnel })).pipe(
          Effect.tap(() => Effect.sync(() => RelayMetrics.limitHit("channels")))
        )

    /** A client's frames wait in its own socket while the tunnel toward the host is full. */
    const pauseForTunnel = (channel: Channel) => {
      if (channel.paused) return
      channel.paused = true
      channel.client.pause()
      RelayMetrics.limitHit("tunnel_buffer")
      conn.onDrain(() => {
        channel.paused = false
        channel.client.resume()
      })
    }

    const openChannel = (client: Conn, open: ChannelOpen) =>
      Effect.suspend(() => {
        if (closing) return client.close(CloseCodes.Internal, "tunnel closed")
        if (channels.size >= config.maxChannelsPerTunnel) return client.close(CloseCodes.TryAgainLater, "too many WebSockets")
        const id = `c${++seq}`
        const opened = conn.unsafeSend(RelayToHostCodec.encode({
          _tag: "ws:open",
          id,
          path: open.path,
          ...(open.query ? { query: open.query } : {}),
          headers: open.headers
        }))
        if (!opened) return client.close(CloseCodes.Internal, "tunnel closed")
        const channel: Channel = { client, paused: false }
        channels.set(id, channel)
        client.onMessage((data) => {
          if (channels.get(id) !== channel) return
          conn.unsafeSend(RelayToHostCodec.encode(wsFrame(id, data)))
          if (conn.bufferedAmount() > config.tunnelBufferBytes) pauseForTunnel(channel)
        })
        const untilClosed = Effect.flatMap(client.closed, (info) =>
          Effect.sync(() => {
            if (channels.get(id) !== channel) return
            channels.delete(id)
            conn.unsafeSend(RelayToHostCodec.encode({ _tag: "ws:close", id, code: info.code, reason: info.reason }))
          }))
        return Effect.withFiberRuntime<void>((fiber) => {
          channelFibers.add(fiber)
          return Effect.ensuring(untilClosed, Effect.sync(() => channelFibers.delete(fiber)))
        })
      })

    return {
      hostId,
      tunnelId,
      connectedAt,
      request,
      hasRoomForChannel,
      openChannel,
      bodyBudget: () => (bodyBudget ??= ByteBudget.make(config.tunnelBodyBudgetBytes)),
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
