import type { HostId } from "@effect-relay/protocol"
import { redisPrefix, redisUrl } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted, TestClock } from "effect"
import type { DirectoryEntry } from "../../src/directory/Directory.js"
import * as RedisDirectory from "../../src/directory/Redis.js"

const entry = (hostId: string, owner: string, tunnelId = `t-${hostId}-${owner}`): DirectoryEntry => ({
  hostId: hostId as HostId,
  owner,
  tunnelId,
  connectedAt: 1_700_000_000_000,
  internalUrl: "http://127.0.0.1:9999"
})

/** A Redis directory under this test's own key prefix (deleted afterwards). */
const directory = (ttlMs = 90_000) =>
  Effect.gen(function*() {
    const { prefix, redis } = yield* redisPrefix("directory")
    const dir = yield* RedisDirectory.make({ url: Redacted.make(redisUrl()), keyPrefix: prefix, ttlMs })
    return { dir, redis, prefix }
  })

describe("Redis directory (real Redis, one round trip per script)", () => {
  it.scoped("REGISTER writes owner, meta and ttl; LOOKUP reads them back", () =>
    Effect.gen(function*() {
      const { dir, prefix, redis } = yield* directory()
      yield* dir.register(entry("acme:a", "iad:m1"))
      expect(yield* dir.lookup("acme:a" as HostId)).toEqual(Option.some(entry("acme:a", "iad:m1")))
      expect(yield* Effect.promise(() => redis.hget(`${prefix}tunnel-owner`, "acme:a"))).toBe("iad:m1")
      const meta = JSON.parse((yield* Effect.promise(() => redis.hget(`${prefix}tunnel-meta`, "acme:a")))!)
      expect(meta).toEqual({ tunnelId: "t-acme:a-iad:m1", connectedAt: 1_700_000_000_000, internalUrl: "http://127.0.0.1:9999" })
      const expiry = Number(yield* Effect.promise(() => redis.zscore(`${prefix}tunnel-ttl`, "acme:a")))
      expect(expiry).toBe(90_000) // TestClock starts at 0: now + 90 s
      expect(yield* dir.lookup("acme:none" as HostId)).toEqual(Option.none())
    }))

  it.scoped("UNREGISTER is compare-and-delete: a host that moved to another relay (or a newer tunnel) is never deleted", () =>
    Effect.gen(function*() {
      const { dir } = yield* directory()
      const onA = entry("acme:mover", "iad:A")
      const onB = entry("acme:mover", "iad:B")
      yield* dir.register(onA)
      yield* dir.register(onB) // the host reconnected to B
      expect(yield* dir.unregister(onA)).toBe(false) // A's late unregister
      expect(Option.map(yield* dir.lookup(onB.hostId), (e) => e.owner)).toEqual(Option.some("iad:B"))
      // Same relay, newer tunnel: the old tunnel's unregister leaves the new one alone.
      const newer = entry("acme:mover", "iad:B", "t-newer")
      yield* dir.register(newer)
      expect(yield* dir.unregister(onB)).toBe(false)
      expect(yield* dir.unregister(newer)).toBe(true)
      expect(yield* dir.lookup(onB.hostId)).toEqual(Option.none())
      expect(yield* dir.unregister(newer)).toBe(false) // already gone
    }))

  it.scoped("HEARTBEAT extends only its own entry, restores a lost one, and leaves a moved one alone", () =>
    Effect.gen(function*() {
      const { dir, prefix, redis } = yield* directory()
      const mine = entry("acme:hb", "iad:A")
      yield* dir.register(mine)
      yield* TestClock.adjust("60 seconds")
      expect(yield* dir.heartbeat(mine)).toBe("extended")
      expect(Number(yield* Effect.promise(() => redis.zscore(`${prefix}tunnel-ttl`, "acme:hb")))).toBe(150_000)
      yield* Effect.promise(() => redis.del(`${prefix}tunnel-owner`, `${prefix}tunnel-meta`, `${prefix}tunnel-ttl`)) // Redis lost it
      expect(yield* dir.heartbeat(mine)).toBe("restored")
      expect(Option.isSome(yield* dir.lookup(mine.hostId))).toBe(true)
      yield* dir.register(entry("acme:hb", "iad:B"))
      expect(yield* dir.heartbeat(mine)).toBe("moved")
      expect(Option.map(yield* dir.lookup(mine.hostId), (e) => e.owner)).toEqual(Option.some("iad:B"))
    }))

  it.scoped("SWEEP deletes entries whose ttl passed, and LOOKUP already ignores them", () =>
    Effect.gen(function*() {
      const { dir } = yield* directory(1_000)
      yield* dir.register(entry("acme:old", "iad:A"))
      yield* TestClock.adjust("800 millis")
      yield* dir.register(entry("acme:new", "iad:A"))
      yield* TestClock.adjust("500 millis")
      expect(yield* dir.lookup("acme:old" as HostId)).toEqual(Option.none())
      expect(yield* dir.sweep).toBe(1)
      expect(Option.isSome(yield* dir.lookup("acme:new" as HostId))).toBe(true)
      expect(yield* dir.sweep).toBe(0)
    }))

  it.scoped("CLEAR_OWN deletes every entry of one owner, and only those", () =>
    Effect.gen(function*() {
      const { dir } = yield* directory()
      for (let i = 0; i < 5; i++) yield* dir.register(entry(`acme:h${i}`, "iad:A"))
      yield* dir.register(entry("acme:other", "iad:B"))
      yield* dir.register(entry("acme:region", "ams:A"))
      expect(yield* dir.clearOwn("iad:A")).toBe(5)
      expect(Option.isSome(yield* dir.lookup("acme:other" as HostId))).toBe(true)
      expect(Option.isSome(yield* dir.lookup("acme:region" as HostId))).toBe(true)
      expect(yield* dir.clearOwn("iad:A")).toBe(0)
    }))

  it.scopedLive("CLEAR_OWN of 10,000 entries (among 20,000) in a single call", () =>
    Effect.gen(function*() {
      const { dir, prefix, redis } = yield* directory()
      // Seed with a pipeline (setup, not the operation under test).
      const pipeline = redis.pipeline()
      for (let i = 0; i < 20_000; i++) {
        const owner = i % 2 === 0 ? "iad:A" : "iad:B"
        pipeline.hset(`${prefix}tunnel-owner`, `acme:h${i}`, owner)
        pipeline.hset(`${prefix}tunnel-meta`, `acme:h${i}`, JSON.stringify({ tunnelId: `t${i}`, connectedAt: 0, internalUrl: "" }))
        pipeline.zadd(`${prefix}tunnel-ttl`, Date.now() + 90_000, `acme:h${i}`)
      }
      yield* Effect.promise(() => pipeline.exec())
      const start = performance.now()
      const cleared = yield* dir.clearOwn("iad:A")
      const ms = performance.now() - start
      console.log(`CLEAR_OWN: ${cleared} of 20000 entries cleared in one call in ${ms.toFixed(1)} ms`)
      expect(cleared).toBe(10_000)
      expect(yield* Effect.promise(() => redis.hlen(`${prefix}tunnel-owner`))).toBe(10_000)
      expect(yield* Effect.promise(() => redis.zcard(`${prefix}tunnel-ttl`))).toBe(10_000)
      expect(yield* Effect.promise(() => redis.hlen(`${prefix}tunnel-meta`))).toBe(10_000)
    }))

  it.scopedLive("an unreachable Redis: operations fail fast with DirectoryUnavailable and the directory says so", () =>
    Effect.gen(function*() {
      const dir = yield* RedisDirectory.make({ url: Redacted.make("redis://127.0.0.1:1"), keyPrefix: "x:", ttlMs: 1000 })
      expect(dir.isAvailable()).toBe(false)
      const start = Date.now()
      const error = yield* Effect.flip(dir.lookup("acme:a" as HostId))
      expect(error._tag).toBe("DirectoryUnavailable")
      expect(Date.now() - start).toBeLessThan(500)
    }))
})
