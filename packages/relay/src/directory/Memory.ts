import type { HostId } from "@effect-relay/protocol"
import { Effect, Layer, Option } from "effect"
import { Directory, type DirectoryEntry } from "../Directory.js"

/**
 * The directory kept in this process: enough for a single relay, and the
 * default when no shared store is configured. Same semantics as the shared one.
 */
export const make = Effect.sync(() => {
  const entries = new Map<HostId, DirectoryEntry>()
  const ownedBy = (hostId: HostId, tunnelId: string) => entries.get(hostId)?.tunnelId === tunnelId
  return Directory.of({
    register: (entry) => Effect.sync(() => void entries.set(entry.hostId, entry)),
    unregister: (hostId, tunnelId) =>
      Effect.sync(() => ownedBy(hostId, tunnelId) && entries.delete(hostId)),
    heartbeat: (hostId, tunnelId) => Effect.sync(() => ownedBy(hostId, tunnelId)),
    lookup: (hostId) => Effect.sync(() => Option.fromNullable(entries.get(hostId))),
    clearOwn: (owner) =>
      Effect.sync(() => {
        let cleared = 0
        for (const [hostId, entry] of entries) {
          if (entry.owner === owner) {
            entries.delete(hostId)
            cleared++
          }
        }
        return cleared
      })
  })
})

export const layer = Layer.effect(Directory, make)
