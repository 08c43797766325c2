/**
 * Reads the relays' Redis directory directly (the layout of
 * `packages/relay/src/directory/Redis.ts`: hash `{prefix}tunnel-owner`
 * hostId -> `{region}:{machineId}`, hash `{prefix}tunnel-meta` hostId -> JSON
 * with `tunnelId`, `connectedAt`, `internalUrl`; sorted set `{prefix}tunnel-ttl`)
 * to find entries that no running relay stands behind.
 */
import type { Redis } from "ioredis"

export interface DirectoryEntryView {
  readonly hostId: string
  readonly owner: string
  /** When the owning relay accepted the tunnel (its clock), if the meta is readable. */
  readonly connectedAt: number | undefined
}

export const readDirectory = async (redis: Redis, prefix: string): Promise<ReadonlyArray<DirectoryEntryView>> => {
  const [owners, metas] = await Promise.all([redis.hgetall(`${prefix}tunnel-owner`), redis.hgetall(`${prefix}tunnel-meta`)])
  return Object.entries(owners).map(([hostId, owner]) => {
    let connectedAt: number | undefined
    try {
      const value = JSON.parse(metas[hostId] ?? "").connectedAt
      connectedAt = typeof value === "number" ? value : undefined
    } catch {
      connectedAt = undefined
    }
    return { hostId, owner, connectedAt }
  })
}

/** The live process behind an owner id: entries it wrote are those connected after it was spawned. */
export interface LiveOwner {
  readonly owner: string
  readonly running: boolean
  readonly spawnedAt: number
}

/**
 * Entries owned by a dead relay: its owner id has no running process, or the
 * entry was written before the running process started (by the one that
 * died), or the entry's meta is unreadable (nothing can route to it).
 */
export const staleEntries = (
  entries: ReadonlyArray<DirectoryEntryView>,
  owners: ReadonlyArray<LiveOwner>
): ReadonlyArray<DirectoryEntryView> =>
  entries.filter((entry) => {
    const live = owners.find((o) => o.owner === entry.owner)
    if (live === undefined || !live.running) return true
    return entry.connectedAt === undefined || entry.connectedAt < live.spawnedAt
  })

/** How many entries name `owner`. */
export const countOwnedBy = (entries: ReadonlyArray<DirectoryEntryView>, owner: string): number =>
  entries.filter((e) => e.owner === owner).length
