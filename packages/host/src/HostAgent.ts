import { CloseCodes, Features, FeaturesHeader, Transport } from "@effect-relay/protocol"
import {
  Clock,
  Context,
  Data,
  Effect,
  Exit,
  Layer,
  Option,
  Random,
  Redacted,
  Ref,
  type Scope,
  Stream,
  SubscriptionRef
} from "effect"
import * as Backoff from "./Backoff.js"
import { ConnectError, type ReconnectReason, reasonOf, type SessionEnd } from "./Errors.js"
import { type HostAgentConfig, resolveHostAgentConfig, type ResolvedHostAgentConfig } from "./HostAgentConfig.js"
import { countReconnect, tunnelOpenScoped } from "./Metrics.js"
import { reconnectLoop, reconnectLoopWithoutDrainReset } from "./ReconnectLoop.js"
import * as Session from "./Session.js"
import * as TargetHttp from "./TargetHttp.js"
import { displayUrl, tunnelUrl } from "./TunnelUrl.js"

/** Where the agent's tunnel is: dialing (the n-th attempt since it was last connected) or open. */
export type TunnelState = Data.TaggedEnum<{
  Connecting: { readonly attempt: number }
  Connected: { readonly since: number }
}>
export const TunnelState = Data.taggedEnum<TunnelState>()

/** The running host agent: its tunnel's state, for readiness checks and tests. */
export class HostAgent extends Context.Tag("effect-relay/HostAgent")<HostAgent, {
  readonly state: SubscriptionRef.SubscriptionRef<TunnelState>
  /** Completes as soon as the tunnel is open (at once if it already is). */
  readonly awaitConnected: Effect.Effect<Extract<TunnelState, { _tag: "Connected" }>>
}>() {}

const logEnd = (end: SessionEnd): Effect.Effect<void> => {
  switch (end._tag) {
    case "ConnectError":
      return end.status === 401 || end.status === 403
        ? Effect.logError("tunnel.connect_refused").pipe(Effect.annotateLogs({
          status: end.status,
          hint: "the relay refused the credentials: check RELAY_TOKEN and HOST_ID"
        }))
        : Effect.logWarning("tunnel.connect_failed").pipe(Effect.annotateLogs({
          ...(end.status !== undefined ? { status: end.status } : {}),
          error: end.message
        }))
    case "SessionClosed":
      return end.code === CloseCodes.Policy
        ? Effect.logError("tunnel.closed").pipe(Effect.annotateLogs({
          code: end.code,
          reason: end.reason,
          hint: "authentication or authorization failed: check RELAY_TOKEN and HOST_ID"
        }))
        : (end.code === CloseCodes.Normal ? Effect.logInfo : Effect.logWarning)("tunnel.closed").pipe(
          Effect.annotateLogs({ code: end.code, reason: end.reason })
        )
    case "WatchdogTimeout":
      return Effect.logWarning("tunnel.watchdog").pipe(
        Effect.annotateLogs({ code: CloseCodes.HostWatchdog, silentMs: end.silentMs })
      )
    case "DrainSignal":
      return Effect.logInfo("tunnel.drain").pipe(
        Effect.annotateLogs({
          source: end.source,
          ...(end.source === "close" ? { code: CloseCodes.Drain } : {}),
          ...(end.reason !== undefined ? { reason: end.reason } : {})
        })
      )
  }
}

/**
 * One connect attempt to `relayUrl`. Disconnected, so stopping the agent mid-handshake does not
 * wait for the handshake to end; the inner fiber never fails (it returns its Exit), so the
 * runtime has no unhandled error to report.
 */
const dial = (config: ResolvedHostAgentConfig, relayUrl: string) =>
  Effect.disconnect(
    Effect.exit(Transport.connect(tunnelUrl(relayUrl, config.hostId), {
      headers: { authorization: `Bearer ${Redacted.value(config.token)}`, [FeaturesHeader]: Features.cancel },
      timeoutMs: config.connectTimeoutMs,
      // The tunnel carries whole bodies: no per-byte masking from our own agent (see Transport).
      zeroMask: true
    }))
  ).pipe(
    Effect.flatten,
    // A URL or header `ws` rejects outright is a failed connect, not a crash.
    Effect.catchAllDefect((defect) => Effect.fail(new ConnectError({ url: displayUrl(relayUrl), cause: defect })))
  )

/**
 * Runs `attempt` forever: the backoff Schedule between failures, reset by a drain (then the fast
 * retry after a drain); or, with `resetOnDrain` off, the climb from before drains were handled.
 */
const reconnectLoopOf = <R>(config: ResolvedHostAgentConfig, attempt: Effect.Effect<never, SessionEnd, R>) => {
  const schedule = Backoff.schedule({ baseMs: config.backoffBaseMs, capMs: config.backoffCapMs, jitter: config.backoffJitter })
  const afterDrain = Backoff.afterDrain<SessionEnd>(
    { intervalMs: config.drainRetryMs, windowMs: config.drainRetryWindowMs },
    (end) => end._tag === "ConnectError",
    schedule
  )
  return config.resetOnDrain
    ? reconnectLoop(attempt, schedule, config.drainJitterMs, reasonOf, afterDrain)
    : reconnectLoopWithoutDrainReset(attempt, schedule, reasonOf)
}

const make = (config: ResolvedHostAgentConfig) =>
  Effect.gen(function*() {
    const state = yield* SubscriptionRef.make<TunnelState>(TunnelState.Connecting({ attempt: 1 }))
    const failedAttempts = yield* Ref.make(0)
    // The relay the last drain came from: the reconnect right after it goes elsewhere when it can.
    let drainedFrom: string | undefined
    const pickRelay = Effect.suspend(() => {
      const others = config.relayUrls.filter((u) => u !== drainedFrom)
      const choices = others.length > 0 ? others : config.relayUrls
      drainedFrom = undefined
      return Effect.map(Random.nextIntBetween(0, choices.length), (i) => choices[i]!)
    })

    // This agent's own counters, logged with each connect (the metrics are per process).
    const startedAt = yield* Clock.currentTimeMillis
    const counters = {
      reconnects: 0,
      byReason: {} as Record<string, number>,
      lastReason: undefined as ReconnectReason | undefined,
      // When the last tunnel ended (or the agent started): the outage a connect ends.
      downSince: startedAt
    }

    /** One end of an attempt or a session: logged, counted, and remembered for the next connect line. */
    const ended = (end: SessionEnd, relayUrl: string) =>
      Effect.suspend(() => {
        const reason = reasonOf(end)
        counters.reconnects += 1
        counters.byReason[reason] = (counters.byReason[reason] ?? 0) + 1
        counters.lastReason = reason
        if (end._tag === "DrainSignal") drainedFrom = relayUrl
        return Effect.zipRight(logEnd(end), countReconnect(reason))
      })

    const session = (n: number, relayUrl: string): Effect.Effect<never, SessionEnd, TargetHttp.TargetHttp | Scope.Scope> =>
      Effect.gen(function*() {
        yield* SubscriptionRef.set(state, TunnelState.Connecting({ attempt: n }))
        yield* Effect.logDebug("tunnel.connecting").pipe(Effect.annotateLogs({ attempt: n }))
        const conn = yield* dial(config, relayUrl).pipe(Effect.tapError(() => Ref.set(failedAttempts, n)))
        // Stopping the agent closes the tunnel with 1000 and a reason the relay can log.
        yield* Effect.addFinalizer((exit) =>
          Exit.isInterrupted(exit) ? conn.close(CloseCodes.Normal, "host agent stopped") : Effect.void
        )
        const since = yield* Clock.currentTimeMillis
        yield* Ref.set(failedAttempts, 0)
        yield* tunnelOpenScoped
        // Runs before the close above (finalizers run in reverse): the tunnel is down from here on.
        yield* Effect.addFinalizer(() =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            counters.downSince = now
            return SubscriptionRef.set(state, TunnelState.Connecting({ attempt: 1 }))
          })
        )
        yield* Effect.logInfo("tunnel.connected").pipe(Effect.annotateLogs({
          attempt: n,
          reconnects: counters.reconnects,
          ...(counters.lastReason !== undefined ? { lastReason: counters.lastReason } : {}),
          reconnectsByReason: { ...counters.byReason },
          downMs: since - counters.downSince
        }))
        yield* SubscriptionRef.set(state, TunnelState.Connected({ since }))
        return yield* Session.run(conn, {
          watchdogMs: config.watchdogMs,
          drainGraceMs: config.drainGraceMs,
          channels: {
            targetUrl: config.targetUrl,
            connectTimeoutMs: config.connectTimeoutMs,
            queueFrames: config.wsQueueFrames
          }
        })
      })

    // Every line of an attempt, its end included, names the relay (without credentials or query).
    const attempt: Effect.Effect<never, SessionEnd, TargetHttp.TargetHttp> = Effect.gen(function*() {
      const n = (yield* Ref.get(failedAttempts)) + 1
      const relayUrl = yield* pickRelay
      return yield* session(n, relayUrl).pipe(
        Effect.scoped,
        Effect.tapError((end) => ended(end, relayUrl)),
        Effect.annotateLogs({ relay: displayUrl(relayUrl) })
      )
    })

    const loop = reconnectLoopOf(config, attempt)

    // Runs after the loop is interrupted (finalizers run in reverse order).
    yield* Effect.addFinalizer(() =>
      Effect.logInfo("host.stopped").pipe(Effect.annotateLogs({
        hostId: config.hostId,
        reconnects: counters.reconnects,
        reconnectsByReason: { ...counters.byReason }
      }))
    )

    yield* loop.pipe(
      Effect.annotateLogs({ hostId: config.hostId }),
      Effect.forkScoped
    )

    const awaitConnected = state.changes.pipe(
      Stream.filter(TunnelState.$is("Connected")),
      Stream.runHead,
      Effect.flatMap(Option.match({
        // `changes` never ends, so this branch is unreachable.
        onNone: () => Effect.dieMessage("tunnel state stream ended"),
        onSome: Effect.succeed
      }))
    )

    return { state, awaitConnected }
  })

/**
 * The host agent as a Layer: it dials the relay and keeps the tunnel up,
 * reconnecting forever, for as long as the Layer lives. Releasing the Layer
 * closes the tunnel with 1000.
 */
export const HostAgentLive = (config: HostAgentConfig): Layer.Layer<HostAgent> => {
  const resolved = resolveHostAgentConfig(config)
  return Layer.scoped(HostAgent, make(resolved)).pipe(
    Layer.provide(TargetHttp.layer({
      targetUrl: resolved.targetUrl,
      requestTimeoutMs: resolved.requestTimeoutMs,
      maxBodyBytes: resolved.maxBodyBytes
    }))
  )
}
