import type { HostId } from "@effect-relay/protocol"
import { Context, type Effect, type Option } from "effect"
import type { DirectoryUnavailable } from "./Errors.js"

/** Who owns a host's tunnel: one relay machine, named `{region}:{machineId}`. */
export interface DirectoryEntry {
  readonly hostId: HostId
  /** `{region}:{machineId}` of the relay holding the tunnel. */
  readonly owner: string
  /** Unique per tunnel: unregister deletes only the entry of the tunnel that wrote it. */
  readonly tunnelId: string
  readonly connectedAt: number
  /** Where other relays reach the owner to proxy a request. */
  readonly internalUrl: string
}

/**
 * The shared record of which relay owns which host. Every write that removes
 * an entry is compare-and-delete, so a relay never deletes an entry that a
 * newer tunnel (on this relay or another) has written since.
 */
export class Directory extends Context.Tag("effect-relay/Directory")<Directory, {
  /** Writes (or overwrites) the entry for `entry.hostId`. */
  readonly register: (entry: DirectoryEntry) => Effect.Effect<void, DirectoryUnavailable>
  /** Deletes the entry only if it still belongs to `tunnelId`; true when it did. */
  readonly unregister: (hostId: HostId, tunnelId: string) => Effect.Effect<boolean, DirectoryUnavailable>
  /** Extends the entry's lifetime, only if it still belongs to `tunnelId`. */
  readonly heartbeat: (hostId: HostId, tunnelId: string) => Effect.Effect<boolean, DirectoryUnavailable>
  readonly lookup: (hostId: HostId) => Effect.Effect<Option.Option<DirectoryEntry>, DirectoryUnavailable>
  /** Deletes every entry owned by `owner` in one operation; returns how many. */
  readonly clearOwn: (owner: string) => Effect.Effect<number, DirectoryUnavailable>
}>() {}

export const ownerId = (region: string, machineId: string): string => `${region}:${machineId}`
