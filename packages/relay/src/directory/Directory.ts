/**
 * The shared record of which relays hold a tunnel of which host. A host's agent holds tunnels on
 * several relays at once (two by default), all of one agent instance: the directory keeps every
 * relay that holds one, and which instance they belong to. Registering a tunnel of a new instance
 * replaces the older instance's tunnels on every relay (last write wins). Every write that removes
 * an entry is compare-and-delete on the tunnel's id, so a relay never deletes an entry a newer
 * tunnel has written since. Every registration is published as an event, which is what requests
 * waiting for a host wait on, and how a relay learns that its tunnel was replaced elsewhere.
 */
import type { HostId } from "@effect-relay/protocol"
import { Context, Data, type Effect, type Stream } from "effect"

/** One relay's tunnel for a host. */
export interface DirectoryEntry {
  readonly hostId: HostId
  /** `{region}:{machineId}` of the relay holding the tunnel. */
  readonly owner: string
  /** Unique per tunnel: unregister deletes only the entry of the tunnel that wrote it. */
  readonly tunnelId: string
  /** The agent process the tunnel belongs to (random per start). */
  readonly instanceId: string
  readonly connectedAt: number
  /** Where other relays reach the owner to proxy a request. */
  readonly internalUrl: string
}

/** What identifies one tunnel's entry for a compare-and-delete. */
export interface EntryRef {
  readonly hostId: HostId
  readonly owner: string
  readonly tunnelId: string
}

/**
 * A heartbeat's outcome: the entry's life was extended; it was gone (the store lost it) and was
 * written back; or it was replaced (a newer instance of the host registered, or another tunnel of
 * this relay): the tunnel heartbeating is not the host's anymore.
 */
export type HeartbeatResult = "extended" | "restored" | "replaced"

/** A tunnel was registered: published to every relay. */
export interface Registration {
  readonly hostId: HostId
  readonly owner: string
  readonly tunnelId: string
  readonly instanceId: string
}

export class Directory extends Context.Tag("effect-relay/Directory")<Directory, {
  /**
   * Writes a tunnel's entry (alive for the directory's TTL) beside the host's other relays' entries
   * of the same instance; an entry of another instance is replaced: every relay's entry of the
   * older instance goes, and those entries are returned. Publishes a `Registration`.
   */
  readonly register: (entry: DirectoryEntry) => Effect.Effect<ReadonlyArray<DirectoryEntry>, DirectoryUnavailable>
  /** Deletes the entry only if it is still this owner's and this tunnel's; true when it did. */
  readonly unregister: (ref: EntryRef) => Effect.Effect<boolean, DirectoryUnavailable>
  /** A live tunnel's proof of life: extends its entry, writes it back if lost, or says it was replaced. */
  readonly heartbeat: (entry: DirectoryEntry) => Effect.Effect<HeartbeatResult, DirectoryUnavailable>
  /** Every live entry of a host (expired ones count as absent): one per relay that holds it. */
  readonly lookup: (hostId: HostId) => Effect.Effect<ReadonlyArray<DirectoryEntry>, DirectoryUnavailable>
  /** Deletes every entry owned by `owner` in one operation; returns how many. */
  readonly clearOwn: (owner: string) => Effect.Effect<number, DirectoryUnavailable>
  /** Deletes entries whose TTL passed; returns how many. */
  readonly sweep: Effect.Effect<number, DirectoryUnavailable>
  /**
   * Every registration from now on, on every relay (this one included), for as long as the
   * stream is read. A registration made while the store was unreachable is not seen.
   */
  readonly registrations: Stream.Stream<Registration>
  /** False while the store cannot be reached (`/ready` answers 503 then). */
  readonly isAvailable: () => boolean
}>() {}

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
