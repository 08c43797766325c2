import type { HostId } from "@effect-relay/protocol"
import { Context, Effect, Layer, Option } from "effect"
import { Directory, type DirectoryEntry, type DirectoryUnavailable } from "../directory/Directory.js"
import type { Tunnel } from "../tunnel/Tunnel.js"
import { TunnelRegistry } from "../tunnel/TunnelRegistry.js"
import { HostOffline } from "./RoutingErrors.js"

/** Where a host's tunnel is: on this relay, or on another one (per the directory). */
export type Route =
  | { readonly _tag: "Local"; readonly tunnel: Tunnel }
  | { readonly _tag: "Remote"; readonly entry: DirectoryEntry; readonly region: string; readonly machineId: string }

/** `{region}:{machineId}` split at the first colon. */
export const parseOwner = (owner: string): { readonly region: string; readonly machineId: string } => {
  const colon = owner.indexOf(":")
  return colon === -1 ? { region: owner, machineId: "" } : { region: owner.slice(0, colon), machineId: owner.slice(colon + 1) }
}

/**
 * Finds where a host is. A local tunnel wins; otherwise the directory says
 * which relay owns it. A request that another relay already forwarded here
 * (`fromPeer`) is never forwarded again, and an entry that names this relay
 * without a local tunnel is stale: it is deleted (compare-and-delete) and
 * the host is offline.
 */
export class Router extends Context.Tag("effect-relay/Router")<Router, {
  readonly locate: (hostId: HostId, options?: { readonly fromPeer?: boolean }) => Effect.Effect<Route, HostOffline | DirectoryUnavailable>
}>() {
  static layer = Layer.effect(
    Router,
    Effect.gen(function*() {
      const registry = yield* TunnelRegistry
      const directory = yield* Directory
      const locate = (hostId: HostId, options: { readonly fromPeer?: boolean } = {}) =>
        Effect.gen(function*() {
          const local = registry.get(hostId)
          if (Option.isSome(local)) return { _tag: "Local", tunnel: local.value } satisfies Route
          if (options.fromPeer) return yield* Effect.fail(new HostOffline({ hostId }))
          const entry = yield* directory.lookup(hostId)
          if (Option.isNone(entry)) return yield* Effect.fail(new HostOffline({ hostId }))
          if (entry.value.owner === registry.owner) {
            const removed = yield* directory.unregister(entry.value)
            yield* Effect.logWarning("directory.stale_entry").pipe(Effect.annotateLogs({ hostId, removed }))
            return yield* Effect.fail(new HostOffline({ hostId }))
          }
          return { _tag: "Remote", entry: entry.value, ...parseOwner(entry.value.owner) } satisfies Route
        })
      return Router.of({ locate })
    })
  )
}
