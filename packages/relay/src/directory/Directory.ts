import type { HostId } from "@effect-relay/protocol"
import { Context, Data, type Effect, type Option } from "effect"

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
  /** Writes (or overwrites) the entry for `entry.hostId`, alive for the directory's TTL. */
  readonly register: (entry: DirectoryEntry) => Effect.Effect<void, DirectoryUnavailable>
  /** Deletes the entry only if it is still this owner's and this tunnel's; true when it did. */
  readonly unregister: (ref: EntryRef) => Effect.Effect<boolean, DirectoryUnavailable>
  /**
   * A live tunnel's proof of life (on pong): extends the entry's TTL if it is still this
   * tunnel's, writes it back if it is gone (the store lost it), leaves it alone if another
   * tunnel owns it now.
   */
  readonly heartbeat: (entry: DirectoryEntry) => Effect.Effect<HeartbeatResult, DirectoryUnavailable>
  /** The live entry for a host (expired ones count as absent). */
  readonly lookup: (hostId: HostId) => Effect.Effect<Option.Option<DirectoryEntry>, DirectoryUnavailable>
  /** Deletes every entry owned by `owner` in one operation; returns how many. */
  readonly clearOwn: (owner: string) => Effect.Effect<number, DirectoryUnavailable>
  /** Deletes entries whose TTL passed; returns how many. */
  readonly sweep: Effect.Effect<number, DirectoryUnavailable>
  /** False while the store cannot be reached (`/ready` answers 503 then). */
  readonly isAvailable: () => boolean
}>() {}

/** What identifies one tunnel's entry for a compare-and-delete. */
export interface EntryRef {
  readonly hostId: HostId
  readonly owner: string
  readonly tunnelId: string
}

export type HeartbeatResult = "extended" | "restored" | "moved"

export const ownerId = (region: string, machineId: string): string => `${region}:${machineId}`

/** The directory (in memory or shared) could not be read or written. */
export class DirectoryUnavailable extends Data.TaggedError("DirectoryUnavailable")<{
  readonly op: string
  readonly cause?: unknown
}> {
  get message() {
    return `directory unavailable (${this.op})`
  }
}
