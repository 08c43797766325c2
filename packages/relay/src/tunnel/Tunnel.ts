/**
 * One host's tunnel on this relay, for the life of the scope it is made in: requests go out as
 * frames and their responses come back by id (`TunnelRequests`), client WebSockets ride along
 * as channels (`TunnelChannels`), pings check the host is alive, and a frame budget keeps one
 * host from taking more of the relay than its share. Its states and who moves them are drawn in
 * the package README:
 *
 * - serving: made; takes requests and channels.
 * - ended: the host closed the connection, stopped answering pings, or kept flooding. Whoever
 *   holds the scope learns it through `onEnded` and closes the scope.
 * - closing: the scope's finalizer runs. With no close intent (`closeWith`) and the host still
 *   there, the relay is going away: drain frame, up to the flush window for in-flight responses,
 *   then close 4001. With an intent (replaced 1000, ping timeout 1001, flood 1008, directory down
 *   1011), that code. Either way pending requests fail (502) and client channels close.
 *
 * Its state is plain fields, not Refs or fibers: an idle tunnel must stay small (tens of KB, see
 * the README's benchmarks), and frames are handled on the socket's own callback.
 */
import {
  CloseCodes,
  CloseReasons,
  defaultWindows,
  Features,
  type FrameError,
  type HostId,
  HostToRelayCodec,
  HostToRelayV2Codec,
  LogLimits,
  RelayToHostCodec,
  type Transport,
  TunnelProtocols,
  type Windows
} from "@effect-relay/protocol"
import { Deferred, Effect, Exit, Option, Runtime, Scope } from "effect"
import { randomUUID } from "node:crypto"
import { RelayConfig, type RelaySettings } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import * as ByteBudget from "./ByteBudget.js"
import { type FrameBudget, makeFrameBudget, type Take } from "./FrameBudget.js"
import * as TunnelChannels from "./TunnelChannels.js"
import type { TooManyChannels, TooManyPendingRequests } from "./TunnelErrors.js"
import * as TunnelRequests from "./TunnelRequests.js"
import * as TunnelStreams from "./TunnelStreams.js"

export type { ForwardRequest, ForwardResponse, RequestError } from "./TunnelRequests.js"
export type { StreamedRequest, StreamError } from "./TunnelStreams.js"
export type { ChannelOpen } from "./TunnelChannels.js"

type Conn = Transport.Transport
type CloseInfo = Transport.CloseInfo

export interface Tunnel {
  readonly hostId: HostId
  readonly tunnelId: string
  /** The agent process it belongs to (its `tunnelId` for agents that do not say). */
  readonly instanceId: string
  /** Which session of that instance it is (0 for agents that do not say). */
  readonly session: number
  readonly connectedAt: number
  /** The tunnel protocol it speaks: 2 streams bodies (`stream`), 1 carries them whole (`request`). */
  readonly version: 1 | 2
  /**
   * Version 2: sends the request with its body as it arrives, and writes the response to the
   * client as it comes; completes once the response head is written.
   */
  readonly stream: (req: TunnelStreams.StreamedRequest) => Effect.Effect<void, TunnelStreams.StreamError>
  /** Version 1: sends a request to the host and waits for its response. */
  readonly request: (
    req: TunnelRequests.ForwardRequest
  ) => Effect.Effect<TunnelRequests.ForwardResponse, TunnelRequests.RequestError | TooManyPendingRequests>
  /** Whether one more client WebSocket fits (checked before the client's upgrade is completed). */
  readonly hasRoomForChannel: () => Effect.Effect<void, TooManyChannels>
  /** Carries a client WebSocket to the host's local WebSocket endpoint until either side closes. */
  readonly openChannel: (client: Conn, open: TunnelChannels.ChannelOpen) => Effect.Effect<void>
  /** The body bytes this tunnel's requests and responses may hold at once. */
  readonly bodyBudget: () => ByteBudget.ByteBudget
  /** Completes when the tunnel ends on its own: the host closed it or stopped answering pings. */
  readonly ended: Effect.Effect<CloseInfo>
  /** Whether the tunnel ended on its own. */
  readonly isEnded: () => boolean
  /** Whether its host said it is stopping: no new request goes to it (those in flight are answered). */
  readonly isLeaving: () => boolean
  /** Whether it is registered and its host greeted: requests go to it only then. */
  readonly isReady: () => boolean
  /** Registered, and the hello (if any) sent: from now on it takes requests. */
  readonly markReady: () => void
  /** One ping period: pings the host, or ends the tunnel (1001) after too many missed pongs. False once ended. */
  readonly pingTick: Effect.Effect<boolean>
  /** Whether a pong came since the last call: the registry heartbeats the directory at most once a ping period. */
  readonly takePong: () => boolean
  /** Sends the drain frame (this one, or a plain one), once; true when this call sent it. */
  readonly notifyDrain: (frame?: string) => boolean
  /** Tells the host which relay this is (the first frame, to agents that announce `hello`). */
  readonly hello: (relay: { readonly relayId: string; readonly region: string }) => void
  /** Decides the close code the finalizer will use (for example 1000 when replaced). */
  readonly closeWith: (code: number, reason: string) => Effect.Effect<void>
  readonly pendingCount: () => number
  readonly channelCount: () => number
  /** Version 2: bytes received from the host and not yet taken by clients. */
  readonly bufferedBytes: () => number
}

export interface TunnelOptions {
  readonly tunnelId?: string
  readonly instanceId?: string
  readonly session?: number
  /** Optional frames the host announced it understands (`Features`). */
  readonly features?: ReadonlySet<string>
  /** The protocol agreed on the upgrade (1 unless the host offered 2 and the relay speaks it). */
  readonly version?: 1 | 2
  /** Version 2: the host's receive windows (its upgrade header). */
  readonly peerWindows?: Windows
  /** Ping from a fiber of this tunnel's own (default). A registry pings all its tunnels from one fiber instead. */
  readonly pingSelf?: boolean
  /** How to start a fiber from the socket's callback (a registry passes its own, tied to its scope). */
  readonly run?: (effect: Effect.Effect<void>) => unknown
  /**
   * Called once when the tunnel ends on its own (not when its scope closes it): whoever holds
   * the scope closes it then. Runs on the socket's callback: it must not block or throw.
   */
  readonly onEnded?: (info: CloseInfo) => void
  /** Called once when the host says it is stopping (a `drain` frame from the host). */
  readonly onLeaving?: () => void
}

/**
 * What a tunnel carries, whichever the protocol: its HTTP exchanges in flight (what a drain and a
 * leaving host wait for) and its client WebSockets.
 */
interface Carried {
  readonly size: () => number
  readonly setOnSettled: (f: (() => void) | undefined) => void
  readonly failAll: () => void
  readonly closeChannels: (code: number, reason: string) => Effect.Effect<void>
  readonly channelCount: () => number
}

const carriedV1 = (requests: TunnelRequests.TunnelRequests, channels: TunnelChannels.TunnelChannels): Carried => ({
  size: requests.size,
  setOnSettled: (f) => (requests.onSettled = f),
  failAll: requests.failAll,
  closeChannels: channels.closeAll,
  channelCount: channels.size
})

const carriedV2 = (streams: TunnelStreams.TunnelStreams): Carried => ({
  size: streams.size,
  setOnSettled: (f) => (streams.onSettled = f),
  failAll: streams.failAll,
  closeChannels: streams.closeChannels,
  channelCount: streams.channelCount
})

/** The same drain frame for every tunnel: encoded once. */
const drainFrame = RelayToHostCodec.encode({ _tag: "drain", reason: "relay draining" })

/**
 * A tunnel's own state, moved by its frames, its pings and its end (see the module comment).
 * One plain object: what every idle tunnel of a large relay costs.
 */
interface Life {
  readonly hostId: HostId
  readonly tunnelId: string
  readonly config: RelaySettings
  readonly conn: Conn
  readonly run: (effect: Effect.Effect<void>) => unknown
  readonly onEnded: ((info: CloseInfo) => void) | undefined
  readonly endedSignal: Deferred.Deferred<CloseInfo>
  missedPongs: number
  ponged: boolean
  drainSent: boolean
  /** Set once the tunnel ended on its own. */
  end: CloseInfo | undefined
  /** Set once the scope's finalizer started. */
  closing: boolean
  /** The close code chosen before closing; none means a drain (4001). */
  intent: Option.Option<CloseInfo>
  /** The host said it is stopping. */
  leaving: boolean
  readonly onLeaving: (() => void) | undefined
  /** Repeated events of this tunnel (bad frames, pauses) are logged a few at a time; made on first use. */
  logGate: LogLimits.LogGate | undefined
}

const markEnded = (life: Life, info: CloseInfo) => {
  if (life.end !== undefined) return
  life.end = info
  Deferred.unsafeDone(life.endedSignal, Exit.succeed(info))
  if (!life.closing) life.onEnded?.(info)
}

const closeWith = (life: Life, code: number, reason: string) => {
  if (Option.isNone(life.intent)) life.intent = Option.some({ code, reason })
}

/** A warning this tunnel's peers can repeat at will: at most 5 lines every 10 s, each saying how many were left out. */
const logLimited = (life: Life, event: string, fields: Record<string, unknown>): Effect.Effect<void> => {
  const suppressed = (life.logGate ??= LogLimits.gate(5, 10_000)).admit()
  if (suppressed === undefined) return Effect.void
  return Effect.logWarning(event).pipe(
    Effect.annotateLogs({ ...fields, hostId: life.hostId, tunnelId: life.tunnelId, ...(suppressed > 0 ? { suppressed } : {}) })
  )
}

export const make = (hostId: HostId, conn: Conn, options: TunnelOptions = {}): Effect.Effect<Tunnel, never, Scope.Scope | RelayConfig> =>
  Effect.gen(function*() {
    const config = yield* RelayConfig
    const life: Life = {
      hostId,
      tunnelId: options.tunnelId ?? randomUUID(),
      config,
      conn,
      run: options.run ?? Runtime.runFork(yield* Effect.runtime<never>()),
      onEnded: options.onEnded,
      endedSignal: yield* Deferred.make<CloseInfo>(),
      missedPongs: 0,
      ponged: false,
      drainSent: false,
      end: undefined,
      closing: false,
      intent: Option.none(),
      leaving: false,
      onLeaving: options.onLeaving,
      logGate: undefined
    }
    const isClosing = () => life.closing
    const version = options.version ?? (conn.protocol === TunnelProtocols.v2 ? 2 : 1)
    const logLimitedHere = (event: string, fields: Record<string, unknown>) => logLimited(life, event, fields)
    let requests: TunnelRequests.TunnelRequests | undefined
    let channels: TunnelChannels.TunnelChannels | undefined
    let streams: TunnelStreams.TunnelStreams | undefined
    let carried: Carried
    const frames = makeFrameBudget(config.tunnelFramesPerSecond, config.tunnelFrameBurst, conn)
    if (version === 2) {
      streams = yield* TunnelStreams.make({
        config,
        hostId,
        conn,
        peerWindows: options.peerWindows ?? defaultWindows,
        isClosing,
        logLimited: logLimitedHere,
        run: life.run,
        earn: frames.earn
      })
      carried = carriedV2(streams)
      readFramesV2(life, frames, streams, carried)
    } else {
      requests = yield* TunnelRequests.make({ config, hostId, conn, cancels: options.features?.has(Features.cancel) === true, isClosing })
      channels = TunnelChannels.make({ config, hostId, conn, isClosing, logLimited: logLimitedHere })
      carried = carriedV1(requests, channels)
      readFrames(life, frames, requests, channels, carried)
    }
    const pingTick = pingTickOf(life)
    if (options.pingSelf ?? true) {
      yield* Effect.forkScoped(Effect.sleep(config.pingIntervalMs).pipe(Effect.zipRight(pingTick), Effect.repeat({ while: (alive) => alive })))
    }
    yield* closeAtTheEnd(life, carried)
    let ready = false
    /** Made on first use: most tunnels of a large relay are idle. */
    let bodyBudget: ByteBudget.ByteBudget | undefined
    return {
      hostId,
      tunnelId: life.tunnelId,
      instanceId: options.instanceId ?? life.tunnelId,
      session: options.session ?? 0,
      connectedAt: Date.now(),
      version,
      stream: streams?.http ?? (() => Effect.dieMessage("a version 1 tunnel carries whole bodies: use request")),
      request: requests?.request ?? (() => Effect.dieMessage("a version 2 tunnel streams bodies: use stream")),
      hasRoomForChannel: streams?.hasRoomForChannel ?? channels!.hasRoom,
      openChannel: streams?.openChannel ?? channels!.open,
      bodyBudget: () => (bodyBudget ??= ByteBudget.make(config.tunnelBodyBudgetBytes)),
      ended: Deferred.await(life.endedSignal),
      isEnded: () => life.end !== undefined,
      isLeaving: () => life.leaving,
      isReady: () => ready,
      markReady: () => {
        ready = true
      },
      pingTick,
      takePong: () => {
        const was = life.ponged
        life.ponged = false
        return was
      },
      notifyDrain: (frame) => notifyDrain(life, frame),
      hello: ({ region, relayId }) =>
        void conn.unsafeSend(RelayToHostCodec.encode({
          _tag: "hello",
          relayId,
          region,
          tunnelId: life.tunnelId,
          ...(version === 2 ? { streamWindow: config.streamWindowBytes, tunnelWindow: config.tunnelWindowBytes } : {})
        })),
      closeWith: (code, reason) => Effect.sync(() => closeWith(life, code, reason)),
      pendingCount: carried.size,
      channelCount: carried.channelCount,
      bufferedBytes: streams?.buffered ?? (() => 0)
    } satisfies Tunnel
  })

// ---- frames from the host ----------------------------------------------------------------------

/**
 * Handles every frame on the socket's own callback: within the frame budget (over it the socket is
 * paused; kept up, the tunnel ends 1008), decoded, and handed to the requests or the channels. A
 * frame that does not decode is counted, logged a few times per interval, and dropped; one meant
 * for a request still waiting fails that request at once (502).
 */
const readFrames = (life: Life, frames: FrameBudget, requests: TunnelRequests.TunnelRequests, channels: TunnelChannels.TunnelChannels, carried: Carried) => {
  const onBadFrame = (error: FrameError): Effect.Effect<void> => {
    RelayMetrics.limitHit("bad_frame")
    if (error.type === "http:response" && error.id !== undefined) requests.onBadResponse(error.id, error.problem)
    return logLimited(life, "tunnel.bad_frame", { problem: error.problem, type: error.type ?? null })
  }

  // What a frame needs done beyond the synchronous part (logs, channel closes); a response, the
  // hot path, is handled in the socket's callback and returns Effect.void.
  const onFrame = HostToRelayCodec.handler((message): Effect.Effect<void> => {
    switch (message._tag) {
      case "pong":
        life.missedPongs = 0
        life.ponged = true
        return Effect.void
      case "http:response":
        return requests.onResponse(message)
      case "ws:frame":
        return channels.onFrame(message)
      case "ws:close":
        return channels.onClose(message)
      case "drain":
        if (!life.leaving) leaving(life, carried)
        return Effect.void
    }
  }, onBadFrame)
  readWithBudget(life, frames, onFrame)
}

/** Version 2: control messages as in version 1 (their own schemas), binary frames to the streams. */
const readFramesV2 = (life: Life, frames: FrameBudget, streams: TunnelStreams.TunnelStreams, carried: Carried) => {
  const onBadFrame = (error: FrameError): Effect.Effect<void> => {
    RelayMetrics.limitHit("bad_frame")
    if (error.type === "http:response" && error.stream !== undefined) streams.onBadResponse(error.stream, error.problem)
    return logLimited(life, "tunnel.bad_frame", { problem: error.problem, type: error.type ?? null })
  }
  const onText = HostToRelayV2Codec.handler((message): Effect.Effect<void> => {
    switch (message._tag) {
      case "pong":
        life.missedPongs = 0
        life.ponged = true
        return Effect.void
      case "drain":
        if (!life.leaving) leaving(life, carried)
        return Effect.void
      default:
        return streams.onMessage(message)
    }
  }, onBadFrame)
  readWithBudget(life, frames, (frame) => {
    if (typeof frame === "string") return onText(frame)
    streams.onFrame(frame)
    return Effect.void
  })
}

/**
 * Hands every frame to `onFrame` on the socket's own callback, within the frame budget (over it
 * the socket is paused; kept up, the tunnel ends 1008).
 */
const readWithBudget = (life: Life, frames: FrameBudget, onFrame: (frame: string | Uint8Array) => Effect.Effect<void>) => {
  const { config, conn } = life

  const onOverBudget = (budget: Exclude<Take, "ok">) => {
    if (budget === "paused") {
      RelayMetrics.limitHit("tunnel_frame_rate")
      life.run(logLimited(life, "tunnel.frame_rate", { framesPerSecond: config.tunnelFramesPerSecond }))
    }
    if (frames.overSinceMs() < config.tunnelFloodCloseMs || life.end !== undefined) return
    RelayMetrics.limitHit("tunnel_flood_closed")
    life.run(Effect.logWarning("tunnel.flood_closed").pipe(
      Effect.annotateLogs({ hostId: life.hostId, tunnelId: life.tunnelId, framesPerSecond: config.tunnelFramesPerSecond, overMs: frames.overSinceMs() })
    ))
    closeWith(life, CloseCodes.Policy, "frame rate")
    markEnded(life, { code: CloseCodes.Policy, reason: "frame rate" })
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
    // A bug in handling one frame is logged (rate-limited like every event a peer can repeat); it
    // must not stop the frames after it.
    if (rest !== Effect.void) {
      life.run(Effect.catchAllDefect(rest, (defect) => logLimited(life, "tunnel.frame_defect", { defect: LogLimits.clip(String(defect)) })))
    }
  })
  conn.onClose((info) => {
    frames.stop()
    markEnded(life, info)
  })
}

/**
 * The host said it is stopping: no new request goes to this tunnel, and once every request sent
 * to it is answered, it closes (1000): the host waits for that close, so nothing is cut.
 */
const leaving = (life: Life, carried: Carried) => {
  life.leaving = true
  life.onLeaving?.()
  const closeWhenAnswered = () => {
    if (carried.size() > 0 || life.end !== undefined) return
    closeWith(life, CloseCodes.Normal, "host leaving")
    markEnded(life, { code: CloseCodes.Normal, reason: "host leaving" })
  }
  carried.setOnSettled(closeWhenAnswered)
  closeWhenAnswered()
}

// ---- pings -------------------------------------------------------------------------------------

/** One ping period: ping, or end the tunnel (1001) after too many missed pongs. False once ended. */
const pingTickOf = (life: Life): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    if (life.end !== undefined) return Effect.succeed(false)
    if (life.missedPongs >= life.config.pingMaxMissed) {
      return Effect.logWarning("tunnel.ping_timeout").pipe(
        Effect.annotateLogs({ missedPongs: life.missedPongs, hostId: life.hostId, tunnelId: life.tunnelId }),
        Effect.zipRight(Effect.sync(() => {
          closeWith(life, CloseCodes.PingTimeout, CloseReasons.PingTimeout)
          markEnded(life, { code: CloseCodes.PingTimeout, reason: CloseReasons.PingTimeout })
        })),
        Effect.as(false)
      )
    }
    life.missedPongs++
    life.conn.unsafeSend(RelayToHostCodec.encode({ _tag: "ping", ts: Date.now() }))
    return Effect.succeed(true)
  })

// ---- the end -----------------------------------------------------------------------------------

const notifyDrain = (life: Life, frame: string = drainFrame) => {
  if (life.drainSent || life.end !== undefined) return false
  life.drainSent = life.conn.unsafeSend(frame)
  return life.drainSent
}

/** The drain frame asking hosts to come back within `reconnectWithinMs` (each at a random moment of it). */
export const drainFrameWithin = (reconnectWithinMs: number): string =>
  RelayToHostCodec.encode({ _tag: "drain", reason: "relay draining", reconnectWithinMs })

/**
 * The tunnel's finalizer. With no intent and the host still there (the relay is going away): the
 * drain frame, then up to the flush window for in-flight responses (done early when the host
 * closes or all are answered), then 4001. Then, whatever the code: what still waits fails,
 * client channels close, the transport closes.
 */
const closeAtTheEnd = (life: Life, carried: Carried) =>
  Effect.gen(function*() {
    const { conn } = life
    const finish = Effect.suspend(() => {
      carried.setOnSettled(undefined)
      carried.failAll()
      const { code, reason } = Option.getOrElse(life.intent, () => ({ code: CloseCodes.Drain, reason: CloseReasons.Draining }))
      const [clientCode, clientReason] = Option.isNone(life.intent) ? [CloseCodes.ServiceRestart, "relay restarting"] : [CloseCodes.Internal, "tunnel closed"]
      return Effect.zipRight(carried.closeChannels(clientCode, clientReason), conn.close(code, reason))
    })
    const flush = Effect.gen(function*() {
      const settled = yield* Deferred.make<void>()
      carried.setOnSettled(() => {
        if (carried.size() === 0) Deferred.unsafeDone(settled, Exit.void)
      })
      yield* Effect.raceFirst(conn.closed, Deferred.await(settled)).pipe(Effect.interruptible, Effect.timeout(life.config.drainFlushMs), Effect.ignore)
    })
    // Scope.addFinalizer, not Effect.addFinalizer: restoring the fiber refs of the moment the
    // finalizer was added costs two diffs and two patches of them per tunnel, which a drain of
    // thousands of tunnels pays all at once. An idle tunnel's finalizer is all synchronous.
    yield* Scope.addFinalizer(yield* Effect.scope, Effect.suspend(() => {
        life.closing = true
        const draining = life.end === undefined && Option.isNone(life.intent)
        if (draining) notifyDrain(life)
        return draining && carried.size() > 0 ? Effect.zipRight(flush, finish) : finish
      }))
  })
