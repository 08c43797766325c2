import { CloseCodes, CloseReasons, type HostId, type Transport } from "@effect-relay/protocol"
import { Context, Effect, FiberMap, Layer, Option } from "effect"
import { Directory, ownerId } from "./Directory.js"
import { RelayConfig } from "./RelayConfig.js"
import { RelayAddress } from "./RelayAddress.js"
import * as Tunnel from "./Tunnel.js"

/**
 * The tunnels this relay holds: one fiber per host in a `FiberMap`, each
 * running a tunnel's scoped life. Registering a host that already has a
 * tunnel interrupts the old fiber (last write wins), which runs its
 * finalizers; closing the registry's scope interrupts them all.
 */
export class TunnelRegistry extends Context.Tag("effect-relay/TunnelRegistry")<TunnelRegistry, {
  /** Takes over an authenticated tunnel transport for `hostId` and runs it until it ends. */
  readonly register: (hostId: HostId, conn: Transport.Transport) => Effect.Effect<void>
  /** The local tunnel for a host, if this relay holds it. */
  readonly get: (hostId: HostId) => Option.Option<Tunnel.Tunnel>
  readonly size: () => number
}>() {
  static layer = Layer.scoped(
    TunnelRegistry,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const directory = yield* Directory
      const address = yield* RelayAddress
      const fibers = yield* FiberMap.make<HostId, void>()
      const local = new Map<HostId, Tunnel.Tunnel>()
      const owner = ownerId(config.region, config.machineId)

      const life = (hostId: HostId, conn: Transport.Transport) =>
        Effect.scoped(
          Effect.gen(function*() {
            const tunnel = yield* Tunnel.make(hostId, conn)
            yield* Effect.annotateLogsScoped({ tunnelId: tunnel.tunnelId })
            yield* Effect.acquireRelease(
              Effect.sync(() => local.set(hostId, tunnel)),
              () => Effect.sync(() => local.get(hostId) === tunnel && local.delete(hostId))
            )
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
              directory.unregister(hostId, tunnel.tunnelId).pipe(
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
          const previous = local.get(hostId)
          if (previous !== undefined) {
            yield* previous.closeWith(CloseCodes.Normal, CloseReasons.Replaced)
            yield* Effect.logInfo("tunnel.replaced").pipe(
              Effect.annotateLogs({ hostId, tunnelId: previous.tunnelId })
            )
          }
          yield* FiberMap.run(fibers, hostId, life(hostId, conn))
        })

      return TunnelRegistry.of({
        register,
        get: (hostId) => Option.fromNullable(local.get(hostId)),
        size: () => local.size
      })
    })
  )
}
