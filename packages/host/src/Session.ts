/**
 * One tunnel session over an open transport: answers pings, forwards HTTP
 * requests (each in its own fiber) and WebSocket channels to the target,
 * and watches for inbound silence. It only ends with an error saying how:
 * the relay closed the tunnel, the watchdog fired, the relay is draining
 * (a drain frame, after which the session serves what is in flight until the
 * relay closes it or the drain grace ends, or a 4001 close), the relay
 * already holds another tunnel of this agent (4003), or it is busy (1013).
 * Requests and channels in flight end with it.
 */
import {
  CloseCodes,
  CloseReasons,
  defaultWindows,
  type Hello,
  type HostToRelay,
  HostToRelayCodec,
  Pong,
  type RelayToHost,
  RelayToHostCodec,
  parseRetryAfter,
  type RelayToHostV2,
  RelayToHostV2Codec,
  type Transport,
  TunnelProtocols
} from "@effect-relay/protocol"
import { Deferred, Duration, Effect, Exit, FiberMap, FiberSet } from "effect"
import { Drained, HeldHere, RelayBusy, SessionClosed, WatchdogTimeout } from "./Errors.js"
import * as TargetChannels from "./TargetChannels.js"
import { TargetHttp } from "./TargetHttp.js"
import * as TargetStreams from "./TargetStreams.js"

export interface SessionOptions {
  /** No frame at all from the relay for this long: close with 4002 and end. */
  readonly watchdogMs: number
  /** After a drain frame, how long to wait for the relay's close (serving in-flight requests) before closing ourselves. */
  readonly drainGraceMs: number
  /** On stop, how long requests in flight get to be answered after the relay was told the host is leaving. */
  readonly stopGraceMs?: number
  readonly channels: TargetChannels.TargetChannelsOptions
  /** Version 2 (when the relay agreed to it): how streams reach the target. */
  readonly streams?: TargetStreams.TargetStreamsOptions
  /**
   * Completed with the first frame that decodes: the relay's `hello` if that is what it is, else
   * `undefined` (a relay that does not send hello). A later hello is only logged.
   */
  readonly greeting?: Deferred.Deferred<Hello | undefined>
}

export type SessionEnded = SessionClosed | WatchdogTimeout | Drained | HeldHere | RelayBusy

/** Version 2's options when the caller gave none (tests of version 1 sessions). */
const defaultStreamOptions = (options: SessionOptions): TargetStreams.TargetStreamsOptions => ({
  targetUrl: options.channels.targetUrl,
  requestTimeoutMs: 30_000,
  connectTimeoutMs: options.channels.connectTimeoutMs,
  windows: defaultWindows
})

/** How a close from the relay ends the session (a drain frame before it makes any close a drain). */
const endOf = (info: Transport.CloseInfo): SessionEnded => {
  switch (info.code) {
    case CloseCodes.Drain:
      return new Drained({ source: "close", ...(info.reason ? { reason: info.reason } : {}) })
    case CloseCodes.HeldHere:
      return new HeldHere({ source: "relay" })
    case CloseCodes.TryAgainLater:
      return new RelayBusy({ retryAfterMs: parseRetryAfter(info.reason), reason: info.reason })
    default:
      return new SessionClosed({ code: info.code, reason: info.reason })
  }
}

export const run = (
  conn: Transport.Transport,
  options: SessionOptions
): Effect.Effect<never, SessionEnded, TargetHttp> =>
  Effect.gen(function*() {
    const target = yield* TargetHttp
    const requests = yield* FiberSet.make()
    // HTTP requests in flight by id, so the relay's `http:cancel` can stop one; each is started
    // straight from the socket's callback.
    const inFlight = yield* FiberMap.make<string>()
    const runRequest = yield* FiberMap.runtime(inFlight)<TargetHttp>()
    // Added after the map, so it runs before the map interrupts what is in flight: stopping the
    // agent tells a relay that understands it (it said hello) that the host is leaving; the relay
    // sends it nothing new and closes the tunnel once every request it sent is answered. That
    // close is waited for, up to the stop grace.
    let helloSeen = false
    yield* Effect.addFinalizer((exit) =>
      Exit.isInterrupted(exit) && helloSeen && conn.unsafeSend(HostToRelayCodec.encode({ _tag: "drain", reason: "host agent stopping" }))
        ? conn.closed.pipe(Effect.interruptible, Effect.timeout(Duration.millis(options.stopGraceMs ?? 5_000)), Effect.ignore)
        : Effect.void
    )
    // Work started by a frame runs in its own fiber in `requests`, started from the socket's
    // callback; they all end with the session.
    const runInSession = yield* FiberSet.runtime(requests)<never>()

    const clock = yield* Effect.clock
    let lastFrameAt = clock.unsafeCurrentTimeMillis()

    const send = (message: HostToRelay): Effect.Effect<void> =>
      conn.send(HostToRelayCodec.encode(message)).pipe(
        Effect.catchAll(() => Effect.logDebug("tunnel.send_after_close").pipe(Effect.annotateLogs({ type: message._tag })))
      )

    const channels = yield* TargetChannels.make(options.channels, send)

    // A drain frame does not end the session at once: in-flight requests still get their
    // responses through this tunnel until the relay closes it (4001), or the grace runs out.
    let drained: Drained | undefined
    const onDrain = (reason: string | undefined, reconnectWithinMs: number | undefined) =>
      Effect.suspend(() => {
        if (drained !== undefined) return Effect.void
        drained = new Drained({
          source: "frame",
          ...(reason !== undefined ? { reason } : {}),
          ...(reconnectWithinMs !== undefined ? { reconnectWithinMs } : {})
        })
        return FiberSet.run(
          requests,
          Effect.sleep(Duration.millis(options.drainGraceMs)).pipe(
            Effect.zipRight(conn.close(CloseCodes.Normal, CloseReasons.Draining))
          )
        ).pipe(Effect.asVoid)
      })

    let greeted = false
    const greet = (message: RelayToHost | RelayToHostV2) => {
      if (greeted) return
      greeted = true
      // A relay that greets first knows a host's `drain` (see the finalizer above).
      helloSeen = message._tag === "hello"
      if (options.greeting) Deferred.unsafeDone(options.greeting, Exit.succeed(message._tag === "hello" ? message : undefined))
    }
    const onHello = (message: Hello) =>
      // Which relay this is: the first frame, handed over through `greeting` above.
      Effect.logDebug("tunnel.hello").pipe(
        Effect.annotateLogs({ relayId: message.relayId, region: message.region, tunnelId: message.tunnelId })
      )

    const handle = (message: RelayToHost): Effect.Effect<void> => {
      greet(message)
      switch (message._tag) {
        case "ping":
          return send(Pong.make({ ts: message.ts }, true))
        case "http":
          runRequest(message.id, Effect.flatMap(target.forward(message), send))
          return Effect.void
        case "http:cancel":
          return FiberMap.remove(inFlight, message.id)
        case "ws:open":
          return channels.open(message)
        case "ws:frame":
          return channels.frame(message)
        case "ws:close":
          return channels.close(message)
        case "drain":
          return onDrain(message.reason, message.reconnectWithinMs)
        case "hello":
          return onHello(message)
      }
    }

    // Version 2: the same control messages, requests and WebSockets as streams, their bytes in binary frames.
    const streams = conn.protocol === TunnelProtocols.v2
      ? yield* TargetStreams.make(options.streams ?? defaultStreamOptions(options), conn, target)
      : undefined
    const handleV2 = (message: RelayToHostV2): Effect.Effect<void> => {
      greet(message)
      switch (message._tag) {
        case "ping":
          return send(Pong.make({ ts: message.ts }, true))
        case "drain":
          return onDrain(message.reason, message.reconnectWithinMs)
        case "hello":
          if (message.streamWindow !== undefined && message.tunnelWindow !== undefined) {
            streams!.setPeerWindows({ stream: message.streamWindow, tunnel: message.tunnelWindow })
          }
          return onHello(message)
        default:
          return streams!.onMessage(message)
      }
    }
    const onTextV2 = RelayToHostV2Codec.handler(handleV2)
    const onFrame = streams === undefined
      ? RelayToHostCodec.handler(handle)
      : (frame: string | Uint8Array): Effect.Effect<void> => {
        if (typeof frame === "string") return onTextV2(frame)
        streams.onFrame(frame)
        return Effect.void
      }

    const closedBy = (info: Transport.CloseInfo): Effect.Effect<never, SessionEnded> =>
      Effect.fail(drained ?? endOf(info))

    conn.onMessage((frame) => {
      lastFrameAt = clock.unsafeCurrentTimeMillis()
      const work = onFrame(frame)
      if (work !== Effect.void) runInSession(work)
    })
    const reader = Effect.flatMap(conn.closed, closedBy)

    // Inbound silence: one sleeping fiber that checks when the last frame came (a timer per
    // frame would cost more than the frame).
    const watchdog: Effect.Effect<never, WatchdogTimeout> = Effect.suspend(() => {
      const silentMs = clock.unsafeCurrentTimeMillis() - lastFrameAt
      return silentMs >= options.watchdogMs
        ? Effect.fail(new WatchdogTimeout({ silentMs: options.watchdogMs }))
        : Effect.zipRight(Effect.sleep(Duration.millis(options.watchdogMs - silentMs)), watchdog)
    })

    return yield* Effect.raceFirst(reader, watchdog).pipe(
      Effect.tapError((ended) => {
        switch (ended._tag) {
          case "WatchdogTimeout":
            return conn.close(CloseCodes.HostWatchdog, CloseReasons.Watchdog)
          default:
            return Effect.void
        }
      })
    )
  }).pipe(Effect.scoped)
