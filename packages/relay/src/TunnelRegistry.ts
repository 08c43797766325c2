import { CloseCodes, CloseReasons, type HostId, type Transport } from "@effect-relay/protocol"
import { Context, Deferred, Effect, ExecutionStrategy, Exit, Fiber, FiberId, Layer, Option, Schedule, Scope } from "effect"
import { Directory, type DirectoryEntry, ownerId } from "./Directory.js"
import { Draining, refuseWhileDraining } from "./Draining.js"
import type { DirectoryUnavailable } from "./Errors.js"
import { RelayAddress } from "./RelayAddress.js"
import { RelayConfig } from "./RelayConfig.js"
import * as RelayMetrics from "./RelayMetrics.js"
import * as Tunnel from "./Tunnel.js"
import { randomUUID } from "node:crypto"

/** Resumes after the event loop has run its pending I/O callbacks once (a macrotask, unlike Effect.yieldNow). */
const yieldToEventLoop = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** An open tunnel and the scope its life runs in. */
interface Held {
  readonly tunnel: Tunnel.Tunnel
  readonly scope: Scope.CloseableScope
}

/** What closing every tunnel at once did, for the drain's log events. */
export interface CloseAllReport {
  readonly tunnels: number
  /** Tunnels whose drain frame went out. */
  readonly notified: number
}

/**
 * The tunnels this relay holds: each lives in its own scope, a child of the
 * registry's, and no fiber waits per tunnel (at 10,000 tunnels a fiber each
 * is most of the relay's memory). Registering a host that already has a
 * tunnel closes the old one's scope (last write wins), which runs its
 * finalizers; `closeAll` (and closing the registry's scope) closes them all
 * at once, so every tunnel's finalizer drains it.
 *
 * It also keeps this relay's part of the directory true: stale entries of
 * this machine id cleared before the first registration, an entry written
 * (with retries) per tunnel and removed when it ends, refreshed on every
 * pong, repaired after the store comes back, and expired entries swept.
 */
export class TunnelRegistry extends Context.Tag("effect-relay/TunnelRegistry")<TunnelRegistry, {
  /**
   * Takes over an authenticated tunnel transport for `hostId` and runs it until it ends.
   * Refused with 4001 when the relay is draining: checked here, after the caller's async auth.
   */
  readonly register: (hostId: HostId, conn: Transport.Transport) => Effect.Effect<void>
  /** The local tunnel for a host, if this relay holds it. */
  readonly get: (hostId: HostId) => Option.Option<Tunnel.Tunnel>
  readonly size: () => number
  /** Requests in flight over all tunnels (for the pending-requests gauge, read at scrape time). */
  readonly pendingRequests: () => number
  readonly hostIds: () => ReadonlyArray<HostId>
  /**
   * Interrupts every tunnel concurrently and waits for their finalizers (drain frame, flush, 4001).
   * `onAllNotified` runs as soon as every drain frame went out.
   */
  readonly closeAll: (onAllNotified: (notified: number) => Effect.Effect<void>) => Effect.Effect<CloseAllReport>
  /** `{region}:{machineId}`: the owner id of this relay's directory entries. */
  readonly owner: string
}>() {
  static layer = Layer.scoped(
    TunnelRegistry,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const directory = yield* Directory
      const address = yield* RelayAddress
      const draining = yield* Draining
      const owner = ownerId(config.region, config.machineId)

      // Entries this machine id left behind (a SIGKILLed predecessor) go before anything of ours is
      // written. Single-flight: registrations wait for it; when the store is down at start-up it is
      // retried in the background until it succeeds.
      let cleared = false
      const clearing = yield* Effect.makeSemaphore(1)
      const ensureCleared = clearing.withPermits(1)(Effect.suspend(() =>
        cleared ? Effect.void : directory.clearOwn(owner).pipe(
          Effect.tap((entries) =>
            Effect.logInfo("relay.startup_cleared").pipe(Effect.annotateLogs({ entries, owner }))
          ),
          Effect.tap(() => Effect.sync(() => {
            cleared = true
          })),
          Effect.asVoid
        )
      ))
      const firstClear = yield* ensureCleared.pipe(
        Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.intersect(Schedule.recurs(2)))),
        Effect.either
      )
      if (firstClear._tag === "Left") {
        yield* Effect.logError("relay.startup_clear_failed", firstClear.left.message)
        yield* ensureCleared.pipe(
          Effect.tapError((e) => Effect.logWarning("relay.startup_clear_failed", e.message)),
          Effect.retry(Schedule.exponential("500 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
          Effect.forkScoped
        )
      }

      // Every tunnel's scope is a child of this one: closing the registry (its Layer's scope)
      // closes them all at once, running every tunnel's finalizers concurrently.
      const tunnelsScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.parallel)
      /** Open tunnels and their scopes. No fiber waits per tunnel: a tunnel ends through its scope. */
      const local = new Map<HostId, Held>()
      /** Tunnels whose last directory write failed: repaired on the next sweep tick. */
      const dirty = new Set<HostId>()
      let notified = 0
      let onNotified: () => void = () => {}

      const entryOf = (tunnel: Tunnel.Tunnel, internalUrl: string): DirectoryEntry => ({
        hostId: tunnel.hostId,
        owner,
        tunnelId: tunnel.tunnelId,
        connectedAt: tunnel.connectedAt,
        internalUrl
      })

      /** Refreshes (or restores) a live tunnel's entry; remembers failures for the next sweep. */
      const refresh = (tunnel: Tunnel.Tunnel) =>
        Effect.gen(function*() {
          if (draining.isDraining() || local.get(tunnel.hostId)?.tunnel !== tunnel || (yield* tunnel.hasEnded)) return
          const { internalUrl } = yield* address.get
          const result = yield* directory.heartbeat(entryOf(tunnel, internalUrl)).pipe(
            Effect.tapError(() => Effect.sync(() => dirty.add(tunnel.hostId))),
            Effect.either
          )
          if (result._tag === "Left") return
          dirty.delete(tunnel.hostId)
          if (result.right === "restored") yield* Effect.logInfo("tunnel.directory_restored")
          if (result.right === "moved") yield* Effect.logWarning("tunnel.directory_owned_elsewhere")
        }).pipe(Effect.annotateLogs({ hostId: tunnel.hostId, tunnelId: tunnel.tunnelId }))

      const registerWithRetries = (entry: DirectoryEntry): Effect.Effect<void, DirectoryUnavailable> =>
        ensureCleared.pipe(
          Effect.zipRight(directory.register(entry)),
          // Three tries in all: 100 ms, then 200 ms apart.
          Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.intersect(Schedule.recurs(2))))
        )

      /**
       * Opens a tunnel in its own scope and writes its directory entry. The scope is closed when
       * the tunnel ends by itself (the `onEnded` hook), when another tunnel replaces it, when its
       * entry cannot be written, or by `closeAll` / the registry closing; its finalizers run in
       * reverse: the directory entry goes (unless a drain clears them all at once), then the tunnel
       * (drain frame, flush, close), and only then does it leave the local map, so a drain past its
       * deadline can still name it.
       */
      const open = (hostId: HostId, conn: Transport.Transport, tunnelId: string) =>
        Effect.gen(function*() {
          const scope = yield* Scope.fork(tunnelsScope, ExecutionStrategy.sequential)
          conn.onClose((info) => RelayMetrics.recordTunnelClose(info.code))
          const close = Scope.close(scope, Exit.void)
          let held: Held | undefined
          yield* Scope.addFinalizer(scope, Effect.sync(() => {
            if (held !== undefined && local.get(hostId) === held) {
              local.delete(hostId)
              dirty.delete(hostId)
            }
          }))
          const hooks: Tunnel.TunnelHooks = {
            onDrainNotified: () => {
              notified++
              onNotified()
            },
            onPong: Effect.suspend(() => (held ? refresh(held.tunnel) : Effect.void)),
            onEnded: (end) =>
              // While draining, the drain's own events say what happened to every tunnel.
              (draining.isDraining()
                ? Effect.void
                : Effect.logInfo("tunnel.closed").pipe(Effect.annotateLogs({ code: end.code, reason: end.reason }))).pipe(
                  Effect.zipRight(close)
                )
          }
          const tunnel = yield* Tunnel.make(hostId, conn, { hooks, ownPinger: false, tunnelId }).pipe(
            Scope.extend(scope),
            Effect.provideService(RelayConfig, config)
          )
          held = { tunnel, scope }
          local.set(hostId, held)
          const { internalUrl } = yield* address.get
          const entry = entryOf(tunnel, internalUrl)
          const registered = yield* registerWithRetries(entry).pipe(
            Effect.as(true),
            Effect.catchTag("DirectoryUnavailable", (e) =>
              Effect.logError("tunnel.register_failed", e.message).pipe(
                Effect.zipRight(RelayMetrics.registration("directory_unavailable")),
                Effect.zipRight(tunnel.closeWith(CloseCodes.Internal, "directory unavailable")),
                Effect.zipRight(close),
                Effect.as(false)
              ))
          )
          if (!registered) return
          const unregister = directory.unregister(entry).pipe(
            Effect.catchTag("DirectoryUnavailable", (e) =>
              Effect.logWarning("tunnel.unregister_failed", e.message).pipe(Effect.annotateLogs({ hostId, tunnelId })))
          )
          // The tunnel may have ended, or the drain begun, while the write was in flight: take it back.
          if (draining.isDraining() || (yield* tunnel.hasEnded)) {
            yield* Effect.logInfo("tunnel.register_rolled_back")
            yield* unregister
            return yield* close
          }
          // While draining, one batched clear-own removes every entry of this relay: no per-tunnel race with it.
          yield* Scope.addFinalizer(scope, Effect.suspend(() => (draining.isDraining() ? Effect.void : unregister)))
          yield* RelayMetrics.registration("accepted")
          yield* Effect.logInfo("tunnel.registered")
        }).pipe(Effect.annotateLogs({ hostId, tunnelId }))

      const register = (hostId: HostId, conn: Transport.Transport) =>
        Effect.gen(function*() {
          if (draining.isDraining()) return yield* refuseWhileDraining(conn, hostId)
          const previous = local.get(hostId)
          if (previous !== undefined) {
            yield* previous.tunnel.closeWith(CloseCodes.Normal, CloseReasons.Replaced)
            yield* Effect.logInfo("tunnel.replaced").pipe(
              Effect.annotateLogs({ hostId, tunnelId: previous.tunnel.tunnelId })
            )
            // Last write wins: the old tunnel is closed (1000) and its entry removed (by tunnel id,
            // so never the new one's) before the new one is written.
            yield* Scope.close(previous.scope, Exit.void)
          }
          yield* open(hostId, conn, randomUUID())
        })

      // One fiber pings every tunnel each period (instead of a fiber and a timer per tunnel).
      yield* Effect.gen(function*() {
        for (const { tunnel } of [...local.values()]) yield* tunnel.pingTick
      }).pipe(
        Effect.repeat(Schedule.spaced(config.pingIntervalMs)),
        Effect.delay(config.pingIntervalMs),
        Effect.forkScoped
      )

      // When the store comes back after being unreachable (it may have lost everything), every
      // live tunnel's entry is refreshed at once, not on the next sweep or pong.
      yield* Effect.gen(function*() {
        let available = directory.isAvailable()
        while (true) {
          yield* Effect.sleep("250 millis")
          const now = directory.isAvailable()
          if (now && !available) {
            yield* Effect.logInfo("directory.available_again").pipe(Effect.annotateLogs({ tunnels: local.size }))
            yield* Effect.forEach([...local.values()], ({ tunnel }) => refresh(tunnel), { concurrency: 64, discard: true })
          }
          available = now
        }
      }).pipe(Effect.forkScoped)

      // Every relay sweeps expired entries, and repairs the entries of its own live tunnels
      // whose writes failed (the store was down): within one period of the store coming back.
      yield* Effect.gen(function*() {
        const swept = yield* directory.sweep
        if (swept > 0) yield* Effect.logInfo("directory.swept").pipe(Effect.annotateLogs({ entries: swept }))
        for (const hostId of [...dirty]) {
          const held = local.get(hostId)
          if (held === undefined) dirty.delete(hostId)
          else yield* refresh(held.tunnel)
        }
      }).pipe(
        Effect.catchAll((e) => Effect.logWarning("directory.sweep_failed", e.message)),
        Effect.repeat(Schedule.spaced(config.sweepIntervalMs)),
        Effect.delay(config.sweepIntervalMs),
        Effect.forkScoped
      )

      const closeAll = (onAllNotified: (notified: number) => Effect.Effect<void>) =>
        Effect.gen(function*() {
          const all = [...local.values()]
          const allNotified = yield* Deferred.make<void>()
          notified = 0
          onNotified = () => {
            if (notified >= all.length) Deferred.unsafeDone(allNotified, Exit.void)
          }
          const closeOne = ({ scope }: Held) => Scope.close(scope, Exit.interrupt(FiberId.none))
          const isBusy = ({ tunnel }: Held) => tunnel.pendingCount() > 0 || tunnel.channelCount() > 0
          // Tunnels with requests in flight (or client WebSockets) wait up to the flush window in
          // their finalizers: those close concurrently, each in its own fiber. Idle ones do not wait
          // at all: they close one after another from this fiber, which at thousands of tunnels
          // is several times cheaper than a fiber each. A tunnel that became busy by the time its
          // turn came joins the concurrent ones.
          const busy = new Set(all.filter(isBusy))
          const closeEvery = Effect.gen(function*() {
            const closingBusy = yield* Effect.forEach(busy, closeOne, { concurrency: "unbounded", discard: true }).pipe(Effect.fork)
            const lateBusy: Array<Held> = []
            let sinceYield = 0
            for (const held of all) {
              if (busy.has(held)) continue
              if (isBusy(held)) lateBusy.push(held)
              else yield* closeOne(held)
              // Let the event loop read sockets now and then (the directory's reply, in-flight
              // responses of busy tunnels): a fiber's own yields only run other fibers.
              if (++sinceYield === 256) {
                sinceYield = 0
                yield* yieldToEventLoop
              }
            }
            yield* Effect.forEach(lateBusy, closeOne, { concurrency: "unbounded", discard: true })
            yield* Fiber.join(closingBusy)
          })
          // Some tunnels may end without a drain frame (the host closed first): then "notified" is when all ended.
          // (No race here: this runs in a finalizer, where a race would wait for its loser to finish.)
          const closing = yield* Effect.fork(Effect.ensuring(closeEvery, Deferred.succeed(allNotified, undefined)))
          yield* Deferred.await(allNotified)
          yield* onAllNotified(notified)
          yield* Fiber.join(closing)
          return { tunnels: all.length, notified }
        })

      return TunnelRegistry.of({
        register,
        get: (hostId) => Option.fromNullable(local.get(hostId)?.tunnel),
        size: () => local.size,
        pendingRequests: () => {
          let total = 0
          for (const { tunnel } of local.values()) total += tunnel.pendingCount()
          return total
        },
        hostIds: () => [...local.keys()],
        closeAll,
        owner
      })
    })
  )
}
