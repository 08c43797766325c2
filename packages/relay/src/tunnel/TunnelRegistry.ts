/**
 * The tunnels this relay holds. Each lives in its own scope, a child of the registry's, and no
 * fiber waits per tunnel (at 10,000 tunnels a fiber each was most of the relay's memory).
 * Registering a host that already has a tunnel closes the old one's scope (last write wins),
 * which runs its finalizers; `closeAll` (and closing the registry's scope) closes them all at
 * once, so every tunnel's finalizer drains it. One fiber pings every tunnel each period, and
 * refreshes the directory entries of those that answered. `DirectorySync` keeps the directory
 * true to what is here.
 */
import { CloseCodes, CloseReasons, Features, type HostId, type Transport, type Windows } from "@effect-relay/protocol"
import { Context, Effect, ExecutionStrategy, Exit, Fiber, FiberId, FiberSet, Layer, Option, Schedule, Scope, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { RelayAddress } from "../config/RelayAddress.js"
import { RelayConfig, type RelaySettings } from "../config/RelayConfig.js"
import { Directory, ownerId } from "../directory/Directory.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import * as DirectorySync from "./DirectorySync.js"
import { Draining, refuseWhileDraining } from "./Draining.js"
import * as Tunnel from "./Tunnel.js"

/** An open tunnel and the scope its life runs in. */
interface Held {
  readonly tunnel: Tunnel.Tunnel
  readonly scope: Scope.CloseableScope
}

export interface RegisterOptions {
  /** Optional frames the host announced it understands. */
  readonly features?: ReadonlySet<string>
  /** The agent process the tunnel belongs to, and which of its sessions it is. */
  readonly instanceId?: string
  readonly session?: number
  /** Version 2: the host's receive windows, from its upgrade request. */
  readonly windows?: Windows
}

/** What closing every tunnel at once did, for the drain's log events. */
export interface CloseAllReport {
  readonly tunnels: number
  /** Tunnels whose drain frame went out. */
  readonly notified: number
  /** The window the hosts were asked to spread their re-dials over. */
  readonly reconnectWithinMs: number
}

export class TunnelRegistry extends Context.Tag("effect-relay/TunnelRegistry")<TunnelRegistry, {
  /**
   * Takes over an authenticated tunnel transport for `hostId` and runs it until it ends.
   * Refused with 4001 when the relay is draining: checked here, after the caller's async auth.
   */
  readonly register: (hostId: HostId, conn: Transport.Transport, options?: RegisterOptions) => Effect.Effect<void>
  /** The local tunnel for a host, if this relay holds it. */
  readonly get: (hostId: HostId) => Option.Option<Tunnel.Tunnel>
  /**
   * Whether this relay already holds a tunnel of this agent instance from another of its sessions:
   * a second tunnel of one agent belongs on another relay (4003, or fly-replay elsewhere).
   */
  readonly holdsOtherSession: (hostId: HostId, instanceId: string, session: number) => boolean
  readonly size: () => number
  /** Requests in flight over all tunnels (for the pending-requests gauge, read at scrape time). */
  readonly pendingRequests: () => number
  /** Version 2: bytes received from hosts and not yet taken by clients, over all tunnels (read at scrape time). */
  readonly streamBufferedBytes: () => number
  readonly hostIds: () => ReadonlyArray<HostId>
  /**
   * Tells every host to move (drain frames), then closes every tunnel and waits for their
   * finalizers (flush, 4001). `onAllNotified` runs once every drain frame went out.
   */
  readonly closeAll: (onAllNotified: (report: CloseAllReport) => Effect.Effect<void>) => Effect.Effect<CloseAllReport>
  /** `{region}:{machineId}`: the owner id of this relay's directory entries. */
  readonly owner: string
}>() {
  static layer = Layer.scoped(
    TunnelRegistry,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const draining = yield* Draining
      const owner = ownerId(config.region, config.machineId)
      const directory = yield* Directory
      // What tunnels start from their sockets' callbacks runs here, interrupted when the registry closes.
      const run = yield* FiberSet.makeRuntime<never>()
      /** Open tunnels and their scopes. */
      const local = new Map<HostId, Held>()

      const sync = yield* DirectorySync.make({
        config,
        directory,
        address: yield* RelayAddress,
        draining,
        owner,
        isLive: (tunnel) => local.get(tunnel.hostId)?.tunnel === tunnel,
        live: () => [...local.values()].map((held) => held.tunnel),
        onReplaced: (tunnel) => replaceLocal(tunnel.hostId, tunnel)
      })

      /** Closes the local tunnel of a host (1000 "Replaced by new tunnel"): a newer tunnel took its place. */
      const replaceLocal = (hostId: HostId, only?: Tunnel.Tunnel) =>
        Effect.gen(function*() {
          const previous = local.get(hostId)
          if (previous === undefined || (only !== undefined && previous.tunnel !== only)) return
          yield* previous.tunnel.closeWith(CloseCodes.Normal, CloseReasons.Replaced)
          yield* Effect.logInfo("tunnel.replaced").pipe(Effect.annotateLogs({ hostId, tunnelId: previous.tunnel.tunnelId }))
          yield* Scope.close(previous.scope, Exit.void)
        })

      // A new instance of a host registered on another relay: its older instance's tunnel here goes.
      yield* Stream.runForEach(directory.registrations, (event) => {
        const held = local.get(event.hostId)
        return held !== undefined && held.tunnel.instanceId !== event.instanceId ? replaceLocal(event.hostId, held.tunnel) : Effect.void
      }).pipe(Effect.forkScoped)

      // Every tunnel's scope is a child of this one: closing the registry (its Layer's scope)
      // closes them all at once, running every tunnel's finalizers concurrently.
      const tunnelsScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.parallel)

      const open = openTunnel({ config, owner, draining, sync, run, tunnelsScope, local })

      const register = (hostId: HostId, conn: Transport.Transport, options: RegisterOptions = {}) =>
        Effect.gen(function*() {
          if (draining.isDraining()) return yield* refuseWhileDraining(conn, hostId)
          const tunnelId = randomUUID()
          const instanceId = options.instanceId ?? tunnelId
          const session = options.session ?? 0
          if (holdsOtherSession(hostId, instanceId, session)) return yield* refuseHeldHere(conn, hostId)
          // Last write wins: the old tunnel (an older instance's, or this session's previous one) is
          // closed (1000) and its entry removed (by tunnel id, so never the new one's) before the new
          // one is written.
          yield* replaceLocal(hostId)
          yield* open(hostId, conn, tunnelId, { ...options, instanceId, session })
        })

      const holdsOtherSession = (hostId: HostId, instanceId: string, session: number) => {
        const held = local.get(hostId)?.tunnel
        return held !== undefined && !held.isEnded() && held.instanceId === instanceId && held.session !== session
      }

      yield* pingEveryTunnel(local, sync, config.pingIntervalMs)

      const closeAll = (onAllNotified: (report: CloseAllReport) => Effect.Effect<void>) =>
        Effect.gen(function*() {
          const all = [...local.values()]
          // The hosts come back over a window sized for the other relays to take them at their
          // registration rate, and well inside the deadline (each host's other tunnel serves meanwhile).
          const reconnectWithinMs = Math.min(Math.ceil((all.length / config.registrationsPerSecond) * 1000), Math.floor(config.drainDeadlineMs / 2))
          const notified = yield* notifyAll(all, Tunnel.drainFrameWithin(reconnectWithinMs))
          const report = { tunnels: all.length, notified, reconnectWithinMs }
          yield* onAllNotified(report)
          yield* closeEvery(all)
          return report
        })

      return TunnelRegistry.of({
        register,
        get: (hostId) => Option.fromNullable(local.get(hostId)?.tunnel),
        holdsOtherSession,
        size: () => local.size,
        pendingRequests: () => {
          let total = 0
          for (const { tunnel } of local.values()) total += tunnel.pendingCount()
          return total
        },
        streamBufferedBytes: () => {
          let total = 0
          for (const { tunnel } of local.values()) total += tunnel.bufferedBytes()
          return total
        },
        hostIds: () => [...local.keys()],
        closeAll,
        owner
      })
    })
  )
}

interface OpenDeps {
  readonly config: RelaySettings
  readonly owner: string
  readonly draining: Context.Tag.Service<typeof Draining>
  readonly sync: DirectorySync.DirectorySync
  /** Starts what tunnels start from their sockets' callbacks, interrupted when the registry closes. */
  readonly run: (effect: Effect.Effect<void>) => unknown
  /** Every tunnel's scope is a child of this one. */
  readonly tunnelsScope: Scope.Scope
  /** Open tunnels and their scopes, by host. */
  readonly local: Map<HostId, Held>
}

/**
 * Opens a tunnel in its own scope and writes its directory entry. The scope is closed when the
 * tunnel ends by itself, when another tunnel replaces it, when its entry cannot be written, or by
 * `closeAll` / the registry closing. Its finalizers run in reverse: the directory entry goes
 * (unless a drain clears them all at once), then the tunnel (drain frame, flush, close), and only
 * then does it leave the local map, so a drain past its deadline can still name it.
 */
/** A second tunnel of one agent instance on this relay is refused: 4003, its agent dials again to land elsewhere. */
const refuseHeldHere = (conn: Transport.Transport, hostId: HostId) =>
  Effect.logInfo("tunnel.refused").pipe(
    Effect.zipRight(RelayMetrics.registration("refused_held_here")),
    Effect.annotateLogs({ hostId, code: CloseCodes.HeldHere, reason: CloseReasons.HeldHere }),
    Effect.zipRight(conn.close(CloseCodes.HeldHere, CloseReasons.HeldHere))
  )

const openTunnel = ({ config, draining, local, owner, run, sync, tunnelsScope }: OpenDeps) =>
(hostId: HostId, conn: Transport.Transport, tunnelId: string, options: RegisterOptions) =>
  Effect.gen(function*() {
    const scope = yield* Scope.fork(tunnelsScope, ExecutionStrategy.sequential)
    conn.onClose((info) => RelayMetrics.recordTunnelClose(info.code))
    const close = Scope.close(scope, Exit.void)
    // Added first, so it runs last: the tunnel stays listed until its own finalizer is done.
    let held: Held | undefined
    yield* Scope.addFinalizer(scope, Effect.sync(() => {
      if (held !== undefined && local.get(hostId) === held) local.delete(hostId)
    }))
    const tunnel = yield* Tunnel.make(hostId, conn, {
      tunnelId,
      ...(options.features !== undefined ? { features: options.features } : {}),
      ...(options.instanceId !== undefined ? { instanceId: options.instanceId } : {}),
      ...(options.session !== undefined ? { session: options.session } : {}),
      ...(options.windows !== undefined ? { peerWindows: options.windows } : {}),
      pingSelf: false,
      run,
      onLeaving: () => run(Effect.suspend(() => leave)),
      // While draining, the drain's own events say what happened to every tunnel.
      onEnded: (end) =>
        run(
          (draining.isDraining()
            ? Effect.void
            : Effect.logInfo("tunnel.closed").pipe(Effect.annotateLogs({ code: end.code, reason: end.reason }))).pipe(Effect.zipRight(close))
        )
    }).pipe(Scope.extend(scope), Effect.provideService(RelayConfig, config))
    held = { tunnel, scope }
    local.set(hostId, held)
    let leave = Effect.void
    const written = yield* sync.register(tunnel).pipe(Effect.either)
    if (written._tag === "Left") {
      yield* Effect.logError("tunnel.register_failed", written.left.message)
      yield* RelayMetrics.registration("directory_unavailable")
      yield* tunnel.closeWith(CloseCodes.Internal, "directory unavailable")
      return yield* close
    }
    const { entry, replaced } = written.right
    if (replaced.length > 0) {
      yield* Effect.logInfo("tunnel.instance_replaced").pipe(Effect.annotateLogs({ relays: replaced.map((e) => e.owner) }))
    }
    // The tunnel may have ended, or the drain begun, while the write was in flight: take it back.
    if (draining.isDraining() || tunnel.isEnded()) {
      yield* Effect.logInfo("tunnel.register_rolled_back")
      yield* sync.unregister(entry)
      return yield* close
    }
    // While draining, one batched clear-own removes every entry of this relay: no per-tunnel race with it.
    yield* Scope.addFinalizer(scope, Effect.suspend(() => (draining.isDraining() ? Effect.void : sync.unregister(entry))))
    // A host that says it is stopping leaves the directory at once: its requests go to another
    // relay, or are held for its next instance, while the ones in flight here are answered.
    leave = Effect.zipRight(Effect.logInfo("tunnel.host_leaving"), sync.unregister(entry)).pipe(
      Effect.annotateLogs({ hostId, tunnelId })
    )
    yield* RelayMetrics.registration("accepted")
    // The hello is the tunnel's first frame (version 2's windows are in it): no request goes to the
    // tunnel before it.
    if (options.features?.has(Features.hello) === true) tunnel.hello({ relayId: owner, region: config.region })
    tunnel.markReady()
    yield* Effect.logInfo("tunnel.registered").pipe(
      Effect.annotateLogs({ instanceId: tunnel.instanceId, session: tunnel.session, protocol: tunnel.version })
    )
  }).pipe(Effect.annotateLogs({ hostId, tunnelId }))

/**
 * One fiber pings every tunnel each period (instead of a fiber and a timer per tunnel), and
 * refreshes the entries of those that answered the last ping: one directory write per tunnel and
 * period at most, however many pongs a host sends.
 */
const pingEveryTunnel = (local: Map<HostId, Held>, sync: DirectorySync.DirectorySync, intervalMs: number) =>
  Effect.gen(function*() {
    const answered: Array<Tunnel.Tunnel> = []
    for (const { tunnel } of [...local.values()]) {
      if (tunnel.takePong()) answered.push(tunnel)
      yield* tunnel.pingTick
    }
    if (answered.length > 0) yield* Effect.fork(sync.refresh(answered))
  }).pipe(
    Effect.repeat(Schedule.spaced(intervalMs)),
    Effect.delay(intervalMs),
    Effect.forkScoped
  )

/** Resumes after the event loop has run its pending I/O callbacks once (a macrotask, unlike Effect.yieldNow). */
const yieldToEventLoop = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** Runs `f` over `items`, letting the event loop read sockets every 256 items. */
const forEachYielding = <A>(items: Iterable<A>, f: (a: A) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    let sinceYield = 0
    for (const item of items) {
      yield* f(item)
      if (++sinceYield === 256) {
        sinceYield = 0
        yield* yieldToEventLoop
      }
    }
  })

/** Sends every host its drain frame; how many went out. */
const notifyAll = (all: ReadonlyArray<Held>, frame: string) =>
  Effect.gen(function*() {
    let notified = 0
    yield* forEachYielding(all, ({ tunnel }) =>
      Effect.sync(() => {
        if (tunnel.notifyDrain(frame)) notified++
      }))
    return notified
  })

/**
 * Closes every tunnel's scope. Tunnels with requests in flight (or client WebSockets) wait up to
 * the flush window in their finalizers: those close concurrently, each in its own fiber. Idle
 * ones do not wait at all: they close one after another from this fiber, which at thousands of
 * tunnels is several times cheaper than a fiber each, with the event loop let in now and then
 * (the directory's reply, in-flight responses of busy tunnels). A tunnel that became busy by the
 * time its turn came joins the concurrent ones.
 */
const closeEvery = (all: ReadonlyArray<Held>) =>
  Effect.gen(function*() {
    const closeOne = ({ scope }: Held) => Scope.close(scope, Exit.interrupt(FiberId.none))
    const isBusy = ({ tunnel }: Held) => tunnel.pendingCount() > 0 || tunnel.channelCount() > 0
    const closeConcurrently = (held: Iterable<Held>) => Effect.forEach(held, closeOne, { concurrency: "unbounded", discard: true })
    const busy = new Set(all.filter(isBusy))
    const closingBusy = yield* Effect.fork(closeConcurrently(busy))
    const lateBusy: Array<Held> = []
    yield* forEachYielding(all, (held) => {
      if (busy.has(held)) return Effect.void
      if (isBusy(held)) return Effect.sync(() => lateBusy.push(held))
      return closeOne(held)
    })
    yield* closeConcurrently(lateBusy)
    yield* Fiber.join(closingBusy)
  })
