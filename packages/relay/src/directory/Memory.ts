/**
 * The directory kept in this process: enough for a single relay, and the default when no shared
 * store is configured. The same semantics as the Redis one (the two run one test suite), TTL and
 * registration events included.
 */
import type { HostId } from "@effect-relay/protocol"
import { Clock, Effect, Layer, PubSub, Stream } from "effect"
import { Directory, type DirectoryEntry, type EntryRef, type Registration } from "./Directory.js"

interface Held {
  readonly entry: DirectoryEntry
  expiresAt: number
}

interface HostRecord {
  instanceId: string
  /** By owner. */
  readonly owners: Map<string, Held>
}

export const make = (options: { readonly ttlMs?: number } = {}) =>
  Effect.gen(function*() {
    const ttlMs = options.ttlMs ?? 90_000
    // Events nobody reads fast enough are dropped (oldest first), never queued without bound.
    const events = yield* PubSub.sliding<Registration>(4096)
    const hosts = new Map<HostId, HostRecord>()

    const owns = (ref: EntryRef) => hosts.get(ref.hostId)?.owners.get(ref.owner)?.entry.tunnelId === ref.tunnelId

    const remove = (hostId: HostId, owner: string) => {
      const record = hosts.get(hostId)
      if (record === undefined) return
      record.owners.delete(owner)
      if (record.owners.size === 0) hosts.delete(hostId)
    }

    /** Writes an entry; an entry of another instance replaces every entry of the older one. */
    const write = (entry: DirectoryEntry, now: number): ReadonlyArray<DirectoryEntry> => {
      let record = hosts.get(entry.hostId)
      const replaced: Array<DirectoryEntry> = []
      if (record !== undefined && record.instanceId !== entry.instanceId) {
        for (const { entry: old } of record.owners.values()) replaced.push(old)
        record.owners.clear()
        record.instanceId = entry.instanceId
      }
      if (record === undefined) hosts.set(entry.hostId, record = { instanceId: entry.instanceId, owners: new Map() })
      record.owners.set(entry.owner, { entry, expiresAt: now + ttlMs })
      return replaced
    }

    const register = (entry: DirectoryEntry) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const replaced = write(entry, now)
        return Effect.as(
          PubSub.publish(events, { hostId: entry.hostId, owner: entry.owner, tunnelId: entry.tunnelId, instanceId: entry.instanceId }),
          replaced
        )
      })

    const heartbeat = (entry: DirectoryEntry) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const record = hosts.get(entry.hostId)
        const held = record?.owners.get(entry.owner)
        if (held !== undefined) {
          if (held.entry.tunnelId !== entry.tunnelId) return "replaced" as const
          held.expiresAt = now + ttlMs
          return "extended" as const
        }
        if (record !== undefined && record.instanceId !== entry.instanceId) return "replaced" as const
        write(entry, now)
        return "restored" as const
      })

    return Directory.of({
      register,
      unregister: (ref) =>
        Effect.sync(() => {
          if (!owns(ref)) return false
          remove(ref.hostId, ref.owner)
          return true
        }),
      heartbeat,
      lookup: (hostId) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const record = hosts.get(hostId)
          if (record === undefined) return []
          return [...record.owners.values()].filter((held) => held.expiresAt > now).map((held) => held.entry)
        }),
      clearOwn: (owner) =>
        Effect.sync(() => {
          let cleared = 0
          for (const [hostId, record] of [...hosts]) {
            if (record.owners.has(owner)) {
              remove(hostId, owner)
              cleared++
            }
          }
          return cleared
        }),
      sweep: Effect.map(Clock.currentTimeMillis, (now) => {
        let swept = 0
        for (const [hostId, record] of [...hosts]) {
          for (const [owner, held] of [...record.owners]) {
            if (held.expiresAt <= now) {
              remove(hostId, owner)
              swept++
            }
          }
        }
        return swept
      }),
      registrations: Stream.fromPubSub(events),
      isAvailable: () => true
    })
  })

export const layer = Layer.scoped(Directory, make())
