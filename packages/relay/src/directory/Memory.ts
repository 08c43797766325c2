import type { HostId } from "@effect-relay/protocol"
import { Clock, Effect, Layer, Option } from "effect"
import { Directory, type DirectoryEntry, type EntryRef } from "./Directory.js"

/**
 * The directory kept in this process: enough for a single relay, and the
 * default when no shared store is configured. Same semantics as the shared
 * one, TTL included.
 */
export const make = (options: { readonly ttlMs?: number } = {}) =>
  Effect.sync(() => {
    const ttlMs = options.ttlMs ?? 90_000
    const entries = new Map<HostId, { readonly entry: DirectoryEntry; expiresAt: number }>()
    const owns = (ref: EntryRef) => {
      const current = entries.get(ref.hostId)?.entry
      return current !== undefined && current.owner === ref.owner && current.tunnelId === ref.tunnelId
    }
    const write = (entry: DirectoryEntry) =>
      Effect.map(Clock.currentTimeMillis, (now) => void entries.set(entry.hostId, { entry, expiresAt: now + ttlMs }))
    return Directory.of({
      register: write,
      unregister: (ref) => Effect.sync(() => owns(ref) && entries.delete(ref.hostId)),
      heartbeat: (entry) =>
        Effect.suspend(() => {
          const current = entries.get(entry.hostId)
          if (current === undefined) return Effect.as(write(entry), "restored" as const)
          if (!owns(entry)) return Effect.succeed("moved" as const)
          return Effect.as(write(entry), "extended" as const)
        }),
      lookup: (hostId) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const current = entries.get(hostId)
          return current !== undefined && current.expiresAt > now ? Option.some(current.entry) : Option.none()
        }),
      clearOwn: (owner) =>
        Effect.sync(() => {
          let cleared = 0
          for (const [hostId, { entry }] of entries) {
            if (entry.owner === owner) {
              entries.delete(hostId)
              cleared++
            }
          }
          return cleared
        }),
      sweep: Effect.map(Clock.currentTimeMillis, (now) => {
        let swept = 0
        for (const [hostId, { expiresAt }] of entries) {
          if (expiresAt <= now) {
            entries.delete(hostId)
            swept++
          }
        }
        return swept
      }),
      isAvailable: () => true
    })
  })

export const layer = Layer.effect(Directory, make())
