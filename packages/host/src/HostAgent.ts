/**
 * The host agent: `tunnels` sessions (default 2), each its own tunnel to a distinct relay with its
 * own reconnect loop (`TunnelSession`), sharing what they know of the relays (`Tunnels`). A drain
 * or a crash of one relay leaves the other tunnels serving while the first one comes back.
 */
import { Clock, Context, Effect, FiberSet, Layer, Option, Stream, type Subscribable, type SubscriptionRef } from "effect"
import { randomUUID } from "node:crypto"
import { type HostAgentConfig, resolveHostAgentConfig, type ResolvedHostAgentConfig } from "./HostAgentConfig.js"
import * as TargetHttp from "./TargetHttp.js"
import * as Tunnels from "./Tunnels.js"
import { type AgentCounters, run as runSession, type TunnelSessionDeps } from "./TunnelSession.js"
import { displayUrl } from "./TunnelUrl.js"

export { SessionState, TunnelState } from "./Tunnels.js"

/** The running host agent: its tunnels' state, for readiness checks and tests. */
export class HostAgent extends Context.Tag("effect-relay/HostAgent")<HostAgent, {
  /** The agent's tunnels as one: Connected (since when at least one has been open) while any is open. */
  readonly state: SubscriptionRef.SubscriptionRef<Tunnels.TunnelState>
  /** Completes as soon as a tunnel is open (at once if one already is). */
  readonly awaitConnected: Effect.Effect<Extract<Tunnels.TunnelState, { _tag: "Connected" }>>
  /** Each session's tunnel, by session index (one entry per `tunnels`). */
  readonly tunnels: Subscribable.Subscribable<ReadonlyArray<Tunnels.SessionState>>
  /** How many tunnels are open now (0 to `tunnels`). */
  readonly connectedCount: Effect.Effect<number>
  /** This agent's instance id: random for each start (each build of the Layer), sent with every tunnel. */
  readonly instanceId: string
}>() {}

const make = (config: ResolvedHostAgentConfig) =>
  Effect.gen(function*() {
    const instanceId = randomUUID()
    const wanted = Math.max(1, Math.floor(config.tunnels))
    const tunnels = yield* Tunnels.make(config.relayUrls, wanted)
    const counters: AgentCounters = { reconnects: 0, byReason: {} }

    yield* Effect.logInfo("host.started").pipe(Effect.annotateLogs({
      hostId: config.hostId,
      instanceId,
      tunnels: wanted,
      relays: config.relayUrls.map(displayUrl)
    }))
    // Runs after the sessions are interrupted (finalizers run in reverse order).
    yield* Effect.addFinalizer(() =>
      Effect.logInfo("host.stopped").pipe(Effect.annotateLogs({
        hostId: config.hostId,
        instanceId,
        reconnects: counters.reconnects,
        reconnectsByReason: { ...counters.byReason }
      }))
    )

    const deps: TunnelSessionDeps = {
      config,
      instanceId,
      tunnels,
      counters,
      startedAt: yield* Clock.currentTimeMillis,
      fewerRelays: yield* fewerRelaysOnce(tunnels, wanted)
    }
    // Interrupted together when the Layer is released: every tunnel closes with 1000 at once.
    const sessions = yield* FiberSet.make<never, never>()
    for (let index = 0; index < wanted; index++) {
      yield* FiberSet.run(sessions, runSession(index, deps).pipe(Effect.annotateLogs({ hostId: config.hostId })))
    }

    const awaitConnected = tunnels.state.changes.pipe(
      Stream.filter(Tunnels.TunnelState.$is("Connected")),
      Stream.runHead,
      Effect.flatMap(Option.match({
        // `changes` never ends, so this branch is unreachable.
        onNone: () => Effect.dieMessage("tunnel state stream ended"),
        onSome: Effect.succeed
      }))
    )

    return HostAgent.of({
      state: tunnels.state,
      awaitConnected,
      tunnels: tunnels.sessions,
      connectedCount: tunnels.connectedCount,
      instanceId
    })
  })

/**
 * Says once, at info, that the agent holds fewer tunnels than it was asked for because there are
 * fewer relays: `host.single_relay` when its tunnels are all on one relay, else
 * `host.fewer_relays`. Its sessions keep trying (at the backoff), so a relay that appears is used.
 */
const fewerRelaysOnce = (tunnels: Tunnels.Tunnels, wanted: number) =>
  Effect.sync(() => {
    let said = false
    return (reason: "held_here" | "relay_without_hello"): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (said) return Effect.void
        said = true
        return Effect.flatMap(tunnels.relaysInUse, (relays) =>
          Effect.logInfo(relays.length <= 1 ? "host.single_relay" : "host.fewer_relays").pipe(Effect.annotateLogs({
            tunnels: Math.max(1, relays.length),
            wanted,
            reason,
            relays
          })))
      })
  })

/**
 * The host agent as a Layer: it dials the relays and keeps its tunnels up,
 * reconnecting forever, for as long as the Layer lives. Releasing the Layer
 * closes every tunnel with 1000.
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
