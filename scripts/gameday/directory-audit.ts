/**
 * Reads the relays' Redis directory directly (the layout of
 * `packages/relay/src/directory/RedisScripts.ts`: hash `{prefix}tunnels` `hostId|owner` -> JSON
 * with `tunnelId`, `instanceId`, `connectedAt`, `internalUrl`) to find entries that no running
 * relay stands behind. One entry per relay holding a host: a host with two tunnels on relays a
 * and b has two entries (`h|region:a`, `h|region:b`); `owners` and `instances`, the other two
 * hashes, are derived from them by the scripts and not read here.
 */
import type { Redis } from "ioredis"

export interface DirectoryEntryView {
  readonly hostId: string
  readonly owner: string
  /** When the owning relay accepted the tunnel (its clock), if the meta is readable. */
  readonly connectedAt: number | undefined
}

export const readDirectory = async (redis: Redis, prefix: string): Promise<ReadonlyArray<DirectoryEntryView>> => {
  const tunnels = await redis.hgetall(`${prefix}tunnels`)
  return Object.entries(tunnels).map(([field, meta]) => {
    const bar = field.indexOf("|")
    const hostId = field.slice(0, bar)
    const owner = field.slice(bar + 1)
    let connectedAt: number | undefined
    try {
      const value = JSON.parse(meta).connectedAt
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

/** Hosts with at least `n` entries under the given owners (the running relays). */
export const hostsWithOwners = (entries: ReadonlyArray<DirectoryEntryView>, owners: ReadonlyArray<string>, n: number): number => {
  const counts = new Map<string, number>()
  for (const e of entries) if (owners.includes(e.owner)) counts.set(e.hostId, (counts.get(e.hostId) ?? 0) + 1)
  let hosts = 0
  for (const c of counts.values()) if (c >= n) hosts++
  return hosts
}
