/**
 * One of the agent's tunnels, for as long as the agent runs: pick a relay URL with the other
 * sessions (`Tunnels`), dial it, wait for the relay's hello, serve the tunnel (`Session`), and
 * when it ends dial again, paced by this session's own reconnect loop (`Pacing`): its own
 * backoff schedule, reset by a drain, untouched by a "held here" or a "busy, retry after".
 */
import { CloseCodes, CloseReasons, type Hello } from "@effect-relay/protocol"
import { Clock, Deferred, Effect, Exit, Fiber, Option, type Scope } from "effect"
import * as Backoff from "./Backoff.js"
import { dial } from "./Dial.js"
import { logEnd } from "./EndLog.js"
import { HeldHere, type ReconnectReason, reasonOf, type SessionEnd } from "./Errors.js"
import type { ResolvedHostAgentConfig } from "./HostAgentConfig.js"
import { countReconnect, tunnelOpenScoped } from "./Metrics.js"
import * as Pacing from "./Pacing.js"
import { pacedReconnectLoop, reconnectLoopWithoutDrainReset } from "./ReconnectLoop.js"
import * as Session from "./Session.js"
import type * as TargetHttp from "./TargetHttp.js"
import type * as Tunnels from "./Tunnels.js"
import { displayUrl } from "./TunnelUrl.js"

/** How long a new tunnel waits for the relay's hello before it counts as up without one (an older relay). */
export const helloWaitMs = 1_000

/** This agent's own counters over all its sessions, logged with each connect and when it stops. */
export interface AgentCounters {
  reconnects: number
  readonly byReason: Record<string, number>
}

export interface TunnelSessionDeps {
  readonly config: ResolvedHostAgentConfig
  readonly instanceId: string
  readonly tunnels: Tunnels.Tunnels
  readonly counters: AgentCounters
  readonly startedAt: number
  /** Says (once per agent) that there are fewer relays than tunnels, and why the agent thinks so. */
  readonly fewerRelays: (reason: "held_here" | "relay_without_hello") => Effect.Effect<void>
}

/** Session `index`, forever. Every line it logs carries `session`; every line of an attempt, `relay`. */
export const run = (index: number, deps: TunnelSessionDeps): Effect.Effect<never, never, TargetHttp.TargetHttp> =>
  Effect.gen(function*() {
    const { config, counters, tunnels } = deps
    const pacer = yield* Pacing.make({
      drainJitterMs: config.drainJitterMs,
      heldHereRedials: Pacing.heldHereRedials,
      onHeldHereLimit: deps.fewerRelays("held_here")
    })
    const own: SessionOwn = { failedAttempts: 0, last: undefined, lastReason: undefined, downSince: deps.startedAt }

    /** One end of an attempt or a tunnel: logged, counted, remembered for the next connect line. */
    const ended = (end: SessionEnd) =>
      Effect.suspend(() => {
        const reason = reasonOf(end)
        counters.reconnects += 1
        counters.byReason[reason] = (counters.byReason[reason] ?? 0) + 1
        own.lastReason = reason
        return Effect.zipRight(logEnd(end), countReconnect(reason))
      })

    const onStandby = (url: string, greets: boolean | undefined) =>
      Effect.logDebug("tunnel.standby").pipe(
        Effect.annotateLogs({ relay: displayUrl(url), waitingFor: "hello from the relay behind this URL" }),
        Effect.zipRight(greets === false ? deps.fewerRelays("relay_without_hello") : Effect.void)
      )

    const attempt: Effect.Effect<never, SessionEnd, TargetHttp.TargetHttp> = Effect.gen(function*() {
      const n = own.failedAttempts + 1
      const url = yield* tunnels.pick(index, n, own.last, onStandby)
      own.last = url
      return yield* tunnel({ index, deps, own, pacer }, n, url).pipe(
        Effect.scoped,
        Effect.tapError(ended),
        Effect.annotateLogs({ relay: displayUrl(url) })
      )
    })

    const schedule = Backoff.schedule({ baseMs: config.backoffBaseMs, capMs: config.backoffCapMs, jitter: config.backoffJitter })
    const afterDrain = Backoff.afterDrain<SessionEnd>(
      { intervalMs: config.drainRetryMs, windowMs: config.drainRetryWindowMs },
      (end) => end._tag === "ConnectError",
      schedule
    )
    return yield* config.resetOnDrain
      ? pacedReconnectLoop(attempt, { schedule, afterReset: afterDrain, pace: pacer.pace, describe: reasonOf })
      : reconnectLoopWithoutDrainReset(attempt, schedule, reasonOf)
  }).pipe(Effect.annotateLogs({ session: index }))

/** What one session remembers between its attempts. */
interface SessionOwn {
  failedAttempts: number
  /** The URL of the previous attempt: the next one prefers another free one. */
  last: string | undefined
  lastReason: ReconnectReason | undefined
  /** When this session's tunnel last ended (or the agent started): the outage a connect ends. */
  downSince: number
}

interface TunnelContext {
  readonly index: number
  readonly deps: TunnelSessionDeps
  readonly own: SessionOwn
  readonly pacer: Pacing.Pacer
}

/**
 * One attempt through `url`: dial, wait for the greeting, check that no other session is on that
 * relay, count the tunnel as up, serve it until it ends.
 */
const tunnel = (
  ctx: TunnelContext,
  n: number,
  url: string
): Effect.Effect<never, SessionEnd, TargetHttp.TargetHttp | Scope.Scope> =>
  Effect.gen(function*() {
    const { deps, index, own } = ctx
    const { config, tunnels } = deps
    let up = false
    // Runs last: the session is back to dialing, and an attempt that never came up counts as failed.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        if (!up) own.failedAttempts = n
        return tunnels.down(index)
      })
    )
    yield* Effect.logDebug("tunnel.connecting").pipe(Effect.annotateLogs({ attempt: n }))
    const conn = yield* dial(config, deps.instanceId, index, url)
    // Stopping the agent closes the tunnel with 1000 and a reason the relay can log.
    yield* Effect.addFinalizer((exit) => (Exit.isInterrupted(exit) ? conn.close(CloseCodes.Normal, "host agent stopped") : Effect.void))

    const greeting = yield* Deferred.make<Hello | undefined>()
    const session = yield* Session.run(conn, {
      watchdogMs: config.watchdogMs,
      drainGraceMs: config.drainGraceMs,
      stopGraceMs: config.stopGraceMs,
      channels: { targetUrl: config.targetUrl, connectTimeoutMs: config.connectTimeoutMs, queueFrames: config.wsQueueFrames },
      streams: {
        targetUrl: config.targetUrl,
        requestTimeoutMs: config.requestTimeoutMs,
        connectTimeoutMs: config.connectTimeoutMs,
        windows: { stream: config.streamWindowBytes, tunnel: config.tunnelWindowBytes }
      },
      greeting
    }).pipe(Effect.forkScoped)

    // A relay that did not say hello last time is not waited for (its hello, if it comes, is still taken).
    const waitMs = (yield* tunnels.greets(url)) === false ? 0 : helloWaitMs
    const hello = yield* greetingOf(greeting, session, waitMs)
    const holder = yield* tunnels.greeted(index, url, hello)
    if (hello !== undefined && holder !== undefined) {
      // Another session is on this relay (a relay that did not refuse it itself with 4003).
      yield* conn.close(CloseCodes.Normal, CloseReasons.HeldHere)
      return yield* Effect.fail(new HeldHere({ source: "agent", relayId: hello.relayId }))
    }
    const since = yield* Clock.currentTimeMillis
    if (hello === undefined && !(yield* Deferred.isDone(greeting))) yield* Effect.forkScoped(lateHello(ctx, url, greeting, since))
    up = true
    yield* cameUp(ctx, n, since, hello)
    return yield* Fiber.join(session)
  })

/**
 * The relay's hello (undefined when the first frame is something else, or nothing came within
 * `waitMs`), or the session's end if it ends first (a 4003 or 1013 right after the upgrade).
 */
const greetingOf = (
  greeting: Deferred.Deferred<Hello | undefined>,
  session: Fiber.Fiber<never, Session.SessionEnded>,
  waitMs: number
): Effect.Effect<Hello | undefined, Session.SessionEnded> => {
  const greeted: Effect.Effect<Hello | undefined> = waitMs <= 0
    ? Effect.flatMap(Deferred.poll(greeting), Option.match({ onNone: () => Effect.succeed(undefined), onSome: (done) => done }))
    : Deferred.await(greeting).pipe(Effect.timeoutTo({ duration: waitMs, onTimeout: () => undefined, onSuccess: (hello) => hello }))
  // Awaiting the fiber (not joining it) so that losing the race leaves the session running.
  return Effect.raceFirst(greeted, Effect.flatten(Fiber.await(session)))
}

/** The tunnel counts as up: the gauge, the connect line with this session's counters, the state. */
const cameUp = (ctx: TunnelContext, n: number, since: number, hello: Hello | undefined) =>
  Effect.gen(function*() {
    const { deps, index, own } = ctx
    own.failedAttempts = 0
    yield* tunnelOpenScoped
    // Runs before the tunnel's other finalizers: the tunnel is down from here on.
    yield* Effect.addFinalizer(() => Effect.map(Clock.currentTimeMillis, (now) => void (own.downSince = now)))
    yield* ctx.pacer.connected
    yield* Effect.logInfo("tunnel.connected").pipe(Effect.annotateLogs({
      attempt: n,
      ...relayOf(hello),
      ...(hello !== undefined ? { tunnelId: hello.tunnelId } : {}),
      // This one included (it is marked connected just below, after its line, as before).
      tunnels: (yield* deps.tunnels.connectedCount) + 1,
      instanceId: deps.instanceId,
      reconnects: deps.counters.reconnects,
      ...(own.lastReason !== undefined ? { lastReason: own.lastReason } : {}),
      reconnectsByReason: { ...deps.counters.byReason },
      downMs: since - own.downSince
    }))
    yield* deps.tunnels.connected(index, { since, ...relayOf(hello) })
  })

const relayOf = (hello: Hello | undefined) => (hello !== undefined ? { relayId: hello.relayId, region: hello.region } : {})

/** A hello that came after the tunnel counted as up without one: the relay is known after all. */
const lateHello = (ctx: TunnelContext, url: string, greeting: Deferred.Deferred<Hello | undefined>, since: number) =>
  Effect.flatMap(Deferred.await(greeting), (hello) =>
    hello === undefined
      ? Effect.void
      : ctx.deps.tunnels.greeted(ctx.index, url, hello).pipe(
        Effect.zipRight(ctx.deps.tunnels.connected(ctx.index, { since, ...relayOf(hello) })),
        Effect.zipRight(Effect.logInfo("tunnel.hello_late").pipe(Effect.annotateLogs(relayOf(hello))))
      ))
