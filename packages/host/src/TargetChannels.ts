import {
  CloseCodes,
  CloseReasons,
  decodeBytes,
  type HostToRelay,
  Transport,
  WsClose,
  WsFrame,
  type WsOpen
} from "@effect-relay/protocol"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, FiberMap, Queue, type Scope, Stream } from "effect"
import { endToEnd } from "./Hop.js"

/**
 * The WebSocket channels of one tunnel session: each `ws:open` from the relay
 * becomes a WebSocket to the target, with frames carried both ways until
 * either end closes. Every channel ends with the session.
 */
export interface TargetChannels {
  readonly open: (message: WsOpen) => Effect.Effect<void>
  readonly frame: (message: WsFrame) => Effect.Effect<void>
  readonly close: (message: WsClose) => Effect.Effect<void>
}

export interface TargetChannelsOptions {
  readonly targetUrl: string
  readonly connectTimeoutMs: number
  /** Frames a channel may hold for the target (while it connects, or while it reads slowly). */
  readonly queueFrames: number
}

/** Close code sent to the relay when the target refuses the WebSocket (or cannot be reached). */
export const TargetUnreachableCode = CloseCodes.Internal
export const TargetUnreachableReason = "target unreachable"

/** Bytes the target socket may have buffered before the channel stops sending to it. */
const highWaterBytes = 4 * 1024 * 1024

type Data = string | Uint8Array

interface Stop {
  readonly code: number
  readonly reason: string
  /** Deliver the frames still queued before closing (a normal close, not an overflow). */
  readonly flush: boolean
}

interface Channel {
  readonly queue: Queue.Queue<Data>
  readonly stop: Deferred.Deferred<Stop>
}

type End =
  | { readonly _tag: "TargetClosed"; readonly info: Transport.CloseInfo }
  | { readonly _tag: "Stopped"; readonly stop: Stop }

const toRelayFrame = (id: string, data: Data): WsFrame =>
  typeof data === "string"
    ? { _tag: "ws:frame", id, data }
    : { _tag: "ws:frame", id, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64"), encoding: "base64" }

const fromRelayFrame = (message: WsFrame): Data =>
  message.encoding === "base64" ? decodeBytes(message.data, "base64") : message.data

/** What a WebSocket open says about the target's WebSocket, in either protocol version. */
export type WsTarget = Pick<WsOpen, "path" | "query" | "headers">

export const handshakeHeaders = (open: WsTarget): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(endToEnd(open.headers ?? {}))) {
    // The WebSocket client makes its own handshake; forwarding these would break it.
    if (name.startsWith("sec-websocket-")) continue
    out[name] = typeof value === "string" ? value : value.join(", ")
  }
  return out
}

/**
 * The subprotocol to offer the target (Vite's HMR socket is `vite-hmr`, GraphQL's
 * `graphql-transport-ws`): the relay accepted the client's first one, so the target is offered
 * that one alone, and either speaks it or refuses.
 */
export const protocolsOf = (open: WsTarget): Array<string> => {
  const offered = Object.entries(open.headers ?? {}).find(([name]) => name.toLowerCase() === "sec-websocket-protocol")?.[1]
  const first = (typeof offered === "string" ? offered : offered?.join(","))?.split(",")[0]?.trim()
  return first === undefined || first === "" ? [] : [first]
}

export const targetWsUrl = (targetUrl: string, open: WsTarget): string => {
  const target = new URL(targetUrl)
  const scheme = target.protocol === "https:" ? "wss:" : "ws:"
  const prefix = target.pathname.replace(/\/+$/, "")
  const path = open.path.startsWith("/") ? open.path : `/${open.path}`
  const query = open.query ? (open.query.startsWith("?") ? open.query : `?${open.query}`) : ""
  return `${scheme}//${target.host}${prefix}${path}${query}`
}

export const make = (
  options: TargetChannelsOptions,
  toRelay: (message: HostToRelay) => Effect.Effect<void>
): Effect.Effect<TargetChannels, never, Scope.Scope> =>
  Effect.gen(function*() {
    const fibers = yield* FiberMap.make<string>()
    const channels = new Map<string, Channel>()

    const forget = (id: string, channel: Channel) =>
      Effect.sync(() => {
        if (channels.get(id) === channel) channels.delete(id)
      })

    /** Relay -> target: the only reader of the queue; waits while the target's socket buffer is full. */
    const pump = (channel: Channel, target: Transport.Transport) =>
      Effect.gen(function*() {
        while (true) {
          const data = yield* Queue.take(channel.queue)
          while (target.bufferedAmount() > highWaterBytes) yield* Effect.sleep(Duration.millis(10))
          yield* target.send(data)
        }
      })

    const life = (id: string, open: WsOpen, channel: Channel) =>
      Effect.gen(function*() {
        const url = targetWsUrl(options.targetUrl, open)
        // Disconnected: a session that ends while the target is still answering the handshake does not wait for it.
        // Its Exit is returned, never failed, so the runtime has no unhandled error to report.
        const connected = yield* Effect.disconnect(Effect.exit(
          Transport.connect(url, { headers: handshakeHeaders(open), protocols: protocolsOf(open), timeoutMs: options.connectTimeoutMs })
        ))
        if (Exit.isFailure(connected)) {
          if (Cause.isInterruptedOnly(connected.cause)) return yield* Effect.interrupt
          yield* forget(id, channel)
          const error = Cause.squash(connected.cause)
          yield* Effect.logWarning("ws.target_unreachable").pipe(
            Effect.annotateLogs({ detail: error instanceof Error ? error.message : String(error) })
          )
          if (!(yield* Deferred.isDone(channel.stop))) {
            yield* toRelay(WsClose.make({ id, code: TargetUnreachableCode, reason: TargetUnreachableReason }))
          }
          return
        }
        const target = connected.value
        yield* Effect.logDebug("ws.open")
        const pumping = yield* Effect.forkScoped(Effect.ignore(pump(channel, target)))

        const fromTarget: Effect.Effect<End> = target.messages.pipe(
          Stream.runForEach((data) => toRelay(toRelayFrame(id, data))),
          Effect.zipRight(target.closed),
          Effect.map((info) => ({ _tag: "TargetClosed", info }) as const)
        )
        const stopped: Effect.Effect<End> = Deferred.await(channel.stop).pipe(
          Effect.map((stop) => ({ _tag: "Stopped", stop }) as const)
        )
        const end = yield* Effect.raceFirst(fromTarget, stopped)

        if (end._tag === "TargetClosed") {
          yield* forget(id, channel)
          yield* Effect.logDebug("ws.target_closed").pipe(Effect.annotateLogs({ code: end.info.code }))
          yield* toRelay(WsClose.make({ id, code: end.info.code, reason: end.info.reason }))
          return
        }
        yield* Fiber.interrupt(pumping)
        if (end.stop.flush) {
          const rest = yield* Queue.takeAll(channel.queue)
          for (const data of rest) yield* Effect.ignore(target.send(data))
        }
        yield* target.close(end.stop.code, end.stop.reason)
      }).pipe(
        Effect.scoped,
        Effect.ensuring(forget(id, channel)),
        Effect.annotateLogs({ channelId: id })
      )

    const open = (message: WsOpen) =>
      Effect.gen(function*() {
        const channel: Channel = {
          queue: yield* Queue.dropping<Data>(options.queueFrames),
          stop: yield* Deferred.make<Stop>()
        }
        channels.set(message.id, channel)
        yield* FiberMap.run(fibers, message.id, life(message.id, message, channel))
      })

    const frame = (message: WsFrame) =>
      Effect.gen(function*() {
        const channel = channels.get(message.id)
        if (channel === undefined) {
          return yield* Effect.logDebug("ws.unknown_channel").pipe(Effect.annotateLogs({ channelId: message.id }))
        }
        if (yield* Queue.offer(channel.queue, fromRelayFrame(message))) return
        channels.delete(message.id)
        yield* Effect.logWarning("ws.queue_full").pipe(
          Effect.annotateLogs({ channelId: message.id, frames: options.queueFrames })
        )
        yield* toRelay(WsClose.make({ id: message.id, code: CloseCodes.TryAgainLater, reason: CloseReasons.QueueFull }))
        yield* Deferred.succeed(channel.stop, { code: CloseCodes.TryAgainLater, reason: CloseReasons.QueueFull, flush: false })
      })

    const close = (message: WsClose) =>
      Effect.gen(function*() {
        const channel = channels.get(message.id)
        if (channel === undefined) {
          return yield* Effect.logDebug("ws.unknown_channel").pipe(Effect.annotateLogs({ channelId: message.id }))
        }
        channels.delete(message.id)
        yield* Deferred.succeed(channel.stop, {
          code: message.code ?? CloseCodes.Normal,
          reason: message.reason ?? "",
          flush: true
        })
      })

    return { open, frame, close }
  })
