/**
 * The directory's semantics, one suite run against both implementations: in memory, and in Redis
 * (the real server, under this file's own key prefix, deleted afterwards).
 */
import type { HostId } from "@effect-relay/protocol"
import { redisPrefix, redisUrl } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Redacted, type Scope, Stream, TestClock } from "effect"
import type { Directory, DirectoryEntry } from "../../src/directory/Directory.js"
import * as MemoryDirectory from "../../src/directory/Memory.js"
import * as RedisDirectory from "../../src/directory/Redis.js"
import { relaySettings } from "../../src/config/RelaySettings.js"

type Dir = Directory["Type"]

const entry = (hostId: string, owner: string, instanceId = "i1", tunnelId = `t-${hostId}-${owner}-${instanceId}`): DirectoryEntry => ({
  hostId: hostId as HostId,
  owner,
  tunnelId,
  instanceId,
  connectedAt: 1_700_000_000_000,
  internalUrl: `http://${owner}.internal:8080`
})

const owners = (entries: ReadonlyArray<DirectoryEntry>) => entries.map((e) => e.owner).sort()

const implementations: ReadonlyArray<{ readonly name: string; readonly make: (ttlMs?: number) => Effect.Effect<Dir, Error, Scope.Scope> }> = [
  { name: "memory", make: (ttlMs = 90_000) => MemoryDirectory.make({ ttlMs }) },
  {
    name: "redis",
    make: (ttlMs = 90_000) =>
      Effect.flatMap(redisPrefix("directory"), ({ prefix }) => RedisDirectory.make({ url: Redacted.make(redisUrl()), keyPrefix: prefix, ttlMs }))
  }
]

for (const impl of implementations) {
  describe(`directory semantics (${impl.name})`, () => {
    it.scoped("two relays hold one host: lookup returns both owners", () =>
      Effect.gen(function*() {
        const dir = yield* impl.make()
        expect(yield* dir.register(entry("acme:a", "iad:A"))).toEqual([])
        expect(yield* dir.register(entry("acme:a", "iad:B"))).toEqual([])
        const found = yield* dir.lookup("acme:a" as HostId)
        expect(owners(found)).toEqual(["iad:A", "iad:B"])
        expect(found.find((e) => e.owner === "iad:B")).toEqual(entry("acme:a", "iad:B"))
        expect(yield* dir.lookup("acme:none" as HostId)).toEqual([])
      }))

    it.scoped("a new instance replaces the older instance's entries on every relay, and says which", () =>
      Effect.gen(function*() {
        const dir = yield* impl.make()
        yield* dir.register(entry("acme:a", "iad:A", "old"))
        yield* dir.register(entry("acme:a", "iad:B", "old"))
        const replaced = yield* dir.register(entry("acme:a", "iad:C", "new"))
        expect(owners(replaced)).toEqual(["iad:A", "iad:B"])
        expect(replaced.every((e) => e.instanceId === "old")).toBe(true)
        expect(owners(yield* dir.lookup("acme:a" as HostId))).toEqual(["iad:C"])
        // The old instance's late unregister and heartbeat change nothing.
        expect(yield* dir.unregister(entry("acme:a", "iad:A", "old"))).toBe(false)
        expect(yield* dir.heartbeat(entry("acme:a", "iad:A", "old"))).toBe("replaced")
        expect(owners(yield* dir.lookup("acme:a" as HostId))).toEqual(["iad:C"])
      }))

    it.scoped("unregister is compare-and-delete by tunnel id, and keeps the other owner", () =>
      Effect.gen(function*() {
        const dir = yield* impl.make()
        const onA = entry("acme:a", "iad:A")
        yield* dir.register(onA)
        yield* dir.register(entry("acme:a", "iad:B"))
        // The same relay's newer tunnel (same instance): the older tunnel's unregister leaves it alone.
        const newerOnA = entry("acme:a", "iad:A", "i1", "t-newer")
        yield* dir.register(newerOnA)
        expect(yield* dir.unregister(onA)).toBe(false)
        expect(yield* dir.unregister(newerOnA)).toBe(true)
        expect(owners(yield* dir.lookup("acme:a" as HostId))).toEqual(["iad:B"])
        expect(yield* dir.unregister(newerOnA)).toBe(false)
      }))

    it.scoped("heartbeat extends its own entry, restores a lost one, and says replaced when another tunnel holds it", () =>
      Effect.gen(function*() {
        const dir = yield* impl.make(1_000)
        const mine = entry("acme:hb", "iad:A")
        yield* dir.register(mine)
        yield* TestClock.adjust("800 millis")
        expect(yield* dir.heartbeat(mine)).toBe("extended")
        yield* TestClock.adjust("800 millis")
        expect(owners(yield* dir.lookup(mine.hostId))).toEqual(["iad:A"]) // alive thanks to the heartbeat
        expect(yield* dir.clearOwn("iad:A")).toBe(1) // the store lost it
        expect(yield* dir.heartbeat(mine)).toBe("restored")
        expect(owners(yield* dir.lookup(mine.hostId))).toEqual(["iad:A"])
        yield* dir.register(entry("acme:hb", "iad:A", "i1", "t-other"))
        expect(yield* dir.heartbeat(mine)).toBe("replaced")
      }))

    it.scoped("sweep deletes the entries whose ttl passed, per relay; lookup already ignores them", () =>
      Effect.gen(function*() {
        const dir = yield* impl.make(1_000)
        yield* dir.register(entry("acme:a", "iad:A"))
        yield* TestClock.adjust("800 millis")
        yield* dir.register(entry("acme:a", "iad:B"))
        yield* TestClock.adjust("500 millis")
        expect(owners(yield* dir.lookup("acme:a" as HostId))).toEqual(["iad:B"])
        expect(yield* dir.sweep).toBe(1)
        expect(owners(yield* dir.lookup("acme:a" as HostId))).toEqual(["iad:B"])
        expect(yield* dir.sweep).toBe(0)
      }))

    it.scoped("clear-own removes only this relay's entries, and keeps the hosts' other owners", () =>
      Effect.gen(function*() {
        const dir = yield* impl.make()
        for (let i = 0; i < 5; i++) {
          yield* dir.register(entry(`acme:h${i}`, "iad:A"))
          if (i % 2 === 0) yield* dir.register(entry(`acme:h${i}`, "iad:B"))
        }
        yield* dir.register(entry("acme:region", "ams:A"))
        expect(yield* dir.clearOwn("iad:A")).toBe(5)
        expect(owners(yield* dir.lookup("acme:h0" as HostId))).toEqual(["iad:B"])
        expect(yield* dir.lookup("acme:h1" as HostId)).toEqual([])
        expect(owners(yield* dir.lookup("acme:region" as HostId))).toEqual(["ams:A"])
        expect(yield* dir.clearOwn("iad:A")).toBe(0)
        // A host with no owner left has no instance either: any instance may register it afresh.
        expect(yield* dir.register(entry("acme:h1", "iad:B", "other"))).toEqual([])
      }))

    it.scopedLive("every registration is published to the directory's readers", () =>
      Effect.gen(function*() {
        const dir = yield* impl.make()
        const reading = yield* Effect.fork(Stream.runCollect(Stream.take(dir.registrations, 2)))
        yield* Effect.sleep("100 millis") // the reader is subscribed
        yield* dir.register(entry("acme:ev", "iad:A"))
        yield* dir.register(entry("acme:ev", "iad:B", "i2"))
        const events = Chunk.toReadonlyArray(yield* Fiber.join(reading).pipe(Effect.timeout("5 seconds")))
        expect(events).toEqual([
          { hostId: "acme:ev", owner: "iad:A", tunnelId: "t-acme:ev-iad:A-i1", instanceId: "i1" },
          { hostId: "acme:ev", owner: "iad:B", tunnelId: "t-acme:ev-iad:B-i2", instanceId: "i2" }
        ])
      }))
  })
}

describe("Redis directory specifics", () => {
  it("the default key prefix puts every key in one Redis Cluster hash slot", () => {
    expect(relaySettings.redisKeyPrefix.defaultText).toBe(JSON.stringify("{relay}:"))
  })

  it.scopedLive("clear-own of 10,000 entries (among 20,000, two relays per host) in a single call", () =>
    Effect.gen(function*() {
      const { prefix, redis } = yield* redisPrefix("directory")
      const dir = yield* RedisDirectory.make({ url: Redacted.make(redisUrl()), keyPrefix: prefix, ttlMs: 90_000 })
      // Seeded with a pipeline of the same writes REGISTER makes (setup, not the operation under test).
      const pipeline = redis.pipeline()
      for (let i = 0; i < 10_000; i++) {
        const hostId = `acme:h${i}`
        pipeline.hset(`${prefix}owners`, hostId, "iad:A|iad:B")
        pipeline.hset(`${prefix}instances`, hostId, "i1")
        for (const owner of ["iad:A", "iad:B"]) {
          pipeline.hset(`${prefix}tunnels`, `${hostId}|${owner}`, JSON.stringify({ tunnelId: `t${i}`, instanceId: "i1", connectedAt: 0, internalUrl: "" }))
          pipeline.zadd(`${prefix}ttl`, Date.now() + 90_000, `${hostId}|${owner}`)
        }
      }
      yield* Effect.promise(() => pipeline.exec())
      const start = performance.now()
      const cleared = yield* dir.clearOwn("iad:A")
      const ms = performance.now() - start
      console.log(`CLEAR_OWN: ${cleared} of 20000 entries cleared in one call in ${ms.toFixed(1)} ms`)
      expect(cleared).toBe(10_000)
      expect(yield* Effect.promise(() => redis.hlen(`${prefix}tunnels`))).toBe(10_000)
      expect(yield* Effect.promise(() => redis.zcard(`${prefix}ttl`))).toBe(10_000)
      expect(yield* Effect.promise(() => redis.hget(`${prefix}owners`, "acme:h7"))).toBe("iad:B")
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
