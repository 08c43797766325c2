/**
 * Where a host can be reached: its tunnel on this relay, or the other relays that hold one (per
 * the directory; a host's agent holds tunnels on two relays). A local tunnel wins, unless this
 * relay is draining and another relay holds the host too. A request that another relay already
 * forwarded here (`fromPeer`) is never forwarded again, and an entry that names this relay
 * without a local tunnel is stale: it is deleted (compare-and-delete).
 */
import type { HostId } from "@effect-relay/protocol"
import { Array as Arr, Context, Effect, Layer, Option } from "effect"
import { RelayConfig } from "../config/RelayConfig.js"
import { Directory, type DirectoryEntry, type DirectoryUnavailable } from "../directory/Directory.js"
import { Draining } from "../tunnel/Draining.js"
import type { Tunnel } from "../tunnel/Tunnel.js"
import { TunnelRegistry } from "../tunnel/TunnelRegistry.js"
import { HostOffline } from "./RoutingErrors.js"

/** Another relay that holds the host. */
export interface Owner {
  readonly entry: DirectoryEntry
  readonly region: string
  readonly machineId: string
}

export type Route =
  | { readonly _tag: "Local"; readonly tunnel: Tunnel }
  /** Other relays that hold the host, this relay's region first. */
  | { readonly _tag: "Remote"; readonly owners: Arr.NonEmptyReadonlyArray<Owner> }

/** `{region}:{machineId}` split at the first colon. */
export const parseOwner = (owner: string): { readonly region: string; readonly machineId: string } => {
  const colon = owner.indexOf(":")
  return colon === -1 ? { region: owner, machineId: "" } : { region: owner.slice(0, colon), machineId: owner.slice(colon + 1) }
}

export class Router extends Context.Tag("effect-relay/Router")<Router, {
  readonly locate: (hostId: HostId, options?: { readonly fromPeer?: boolean }) => Effect.Effect<Route, HostOffline | DirectoryUnavailable>
}>() {
  static layer = Layer.effect(
    Router,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const registry = yield* TunnelRegistry
      const directory = yield* Directory
      const draining = yield* Draining

      /** The other relays holding `hostId`, this region first; this relay's own stale entries deleted. */
      const others = (hostId: HostId, local: Option.Option<Tunnel>) =>
        Effect.gen(function*() {
          const entries = yield* directory.lookup(hostId)
          const owners: Array<Owner> = []
          for (const entry of entries) {
            if (entry.owner !== registry.owner) owners.push({ entry, ...parseOwner(entry.owner) })
            else if (Option.isNone(local) || local.value.tunnelId !== entry.tunnelId) {
              const removed = yield* directory.unregister(entry)
              yield* Effect.logWarning("directory.stale_entry").pipe(Effect.annotateLogs({ hostId, removed }))
            }
          }
          return Arr.sort(owners, sameRegionFirst(config.region))
        })

      const locate = (hostId: HostId, options: { readonly fromPeer?: boolean } = {}) =>
        Effect.gen(function*() {
          const here = registry.get(hostId)
          const local = Option.filter(here, (tunnel) => tunnel.isReady() && !tunnel.isEnded() && !tunnel.isLeaving())
          // Serving, a local tunnel is the answer at once (no directory call on the hot path);
          // draining, another relay is preferred when one holds the host too.
          if (Option.isSome(local) && (!draining.isDraining() || options.fromPeer)) return { _tag: "Local", tunnel: local.value } as Route
          if (options.fromPeer) return yield* new HostOffline({ hostId })
          // An entry of this relay's is stale only if no tunnel here has its id (one still registering is not).
          const remote = yield* others(hostId, here)
          if (Arr.isNonEmptyReadonlyArray(remote)) return { _tag: "Remote", owners: remote } as Route
          if (Option.isSome(local)) return { _tag: "Local", tunnel: local.value } as Route
          return yield* new HostOffline({ hostId })
        })
      return Router.of({ locate })
    })
  )
}

/** An order of owners: those in `region` first, then the rest (each group in the directory's order). */
const sameRegionFirst = (region: string) => (a: Owner, b: Owner): -1 | 0 | 1 =>
  a.region === b.region ? 0 : a.region === region ? -1 : b.region === region ? 1 : 0
