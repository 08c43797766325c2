import { CloseCodes, CloseReasons, type HostId, type Transport } from "@effect-relay/protocol"
import { Context, Deferred, Effect, Exit, Fiber, FiberMap, Layer, Option } from "effect"
import { Directory, ownerId } from "./Directory.js"
import { Draining } from "./Draining.js"
import { RelayAddress } from "./RelayAddress.js"
import { RelayConfig } from "./RelayConfig.js"
import * as Tunnel from "./Tunnel.js"

/** What closing every tunnel at once did, for the drain's log events. */
export interface CloseAllReport {
  readonly tunnels: number
  /** Tunnels whose drain frame went out. */
  readonly notified: number
}

/**
 * The tunnels this relay holds: one fiber per host in a `FiberMap`, each
 * running a tunnel's scoped life. Registering a host that already has a
 * tunnel interrupts the old fiber (last write wins), which runs its
 * finalizers; `closeAll` (and closing the registry's scope) interrupts them
 * all at once, so every tunnel's finalizer drains it.
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
  readonly hostIds: () => ReadonlyArray<HostId>
  /**
   * Interrupts every tunnel concurrently and waits for their finalizers (drain frame, flush, 4001).
   * `onAllNotified` runs as soon as every drain frame went out.
   */
  readonly closeAll: (onAllNotified: (notified: number) => Effect.Effect<void>) => Effect.Effect<CloseAllReport>
}>() {
  static layer = Layer.scoped(
    TunnelRegistry,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const directory = yield* Directory
      const address = yield* RelayAddress
      const draining = yield* Draining
      const owner = ownerId(config.region, config.machineId)

      // Entries this machine id left behind (a SIGKILLed predecessor) go before anything registers.
      const stale = yield* directory.clearOwn(owner).pipe(
        Effect.tapError((e) => Effect.logError("relay.startup_clear_failed", e.message)),
        Effect.orElseSucceed(() => 0)
      )
      yield* Effect.logInfo("relay.startup_cleared").pipe(Effect.annotateLogs({ entries: stale, owner }))

      const fibers = yield* FiberMap.make<HostId, void>()
      const local = new Map<HostId, Tunnel.Tunnel>()
      let notified = 0
      let onNotified: () => void = () => {}
      const hooks: Tunnel.TunnelHooks = {
        onDrainNotified: Effect.sync(() => {
          notified++
          onNotified()
        })
      }

      const life = (hostId: HostId, conn: Transport.Transport) =>
        Effect.scoped(
          Effect.gen(function*() {
            // Finalizers run in reverse: the tunnel leaves the local map only after its own finalizer
            // (drain frame, flush, close) is done, so a drain past its deadline can still name it.
            let tunnel: Tunnel.Tunnel | undefined
            yield* Effect.addFinalizer(() => Effect.sync(() => local.get(hostId) === tunnel && local.delete(hostId)))
            tunnel = yield* Tunnel.make(hostId, conn, hooks)
            yield* Effect.annotateLogsScoped({ tunnelId: tunnel.tunnelId })
            local.set(hostId, tunnel)
            const { internalUrl } = yield* address.get
            const registered = yield* directory.register({
              hostId,
              owner,
              tunnelId: tunnel.tunnelId,
              connectedAt: tunnel.connectedAt,
              internalUrl
            }).pipe(
              Effect.as(true),
              Effect.catchTag("DirectoryUnavailable", (e) =>
                Effect.logError("tunnel.register_failed", e.message).pipe(
                  Effect.zipRight(tunnel.closeWith(CloseCodes.Internal, "directory unavailable")),
                  Effect.as(false)
                ))
            )
            if (!registered) return
            yield* Effect.addFinalizer(() =>
              // While draining, one batched clear-own removes every entry of this relay: no per-tunnel race with it.
              draining.isDraining()
                ? Effect.void
                : directory.unregister(hostId, tunnel.tunnelId).pipe(
                  Effect.catchTag("DirectoryUnavailable", (e) => Effect.logWarning("tunnel.unregister_failed", e.message))
                )
            )
            yield* Effect.logInfo("tunnel.registered")
            const end = yield* tunnel.ended
            yield* Effect.logInfo("tunnel.closed").pipe(Effect.annotateLogs({ code: end.code, reason: end.reason }))
          })
        ).pipe(Effect.provideService(RelayConfig, config), Effect.annotateLogs({ hostId }))

      const register = (hostId: HostId, conn: Transport.Transport) =>
        Effect.gen(function*() {
          if (draining.isDraining()) {
            yield* Effect.logInfo("tunnel.refused").pipe(
              Effect.annotateLogs({ hostId, code: CloseCodes.Drain, reason: CloseReasons.Draining })
            )
            return yield* conn.close(CloseCodes.Drain, CloseReasons.Draining)
          }
          const previous = local.get(hostId)
          if (previous !== undefined) {
            yield* previous.closeWith(CloseCodes.Normal, CloseReasons.Replaced)
            yield* Effect.logInfo("tunnel.replaced").pipe(
              Effect.annotateLogs({ hostId, tunnelId: previous.tunnelId })
            )
          }
          yield* FiberMap.run(fibers, hostId, life(hostId, conn))
        })

      const closeAll = (onAllNotified: (notified: number) => Effect.Effect<void>) =>
        Effect.gen(function*() {
          const all = Array.from(fibers, ([, fiber]) => fiber)
          const allNotified = yield* Deferred.make<void>()
          notified = 0
          onNotified = () => {
            if (notified >= all.length) Deferred.unsafeDone(allNotified, Exit.void)
          }
          // Some tunnels may end without a drain frame (the host closed first): then "notified" is when all ended.
          // (No race here: this runs in a finalizer, where a race would wait for its loser to finish.)
          const closing = yield* Effect.fork(Fiber.interruptAll(all).pipe(Effect.ensuring(Deferred.succeed(allNotified, undefined))))
          yield* Deferred.await(allNotified)
          yield* onAllNotified(notified)
          yield* Fiber.join(closing)
          return { tunnels: all.length, notified }
        })

      return TunnelRegistry.of({
        register,
        get: (hostId) => Option.fromNullable(local.get(hostId)),
        size: () => local.size,
        hostIds: () => [...local.keys()],
        closeAll
      })
    })
  )
}
