/**
 * The directory in Redis, shared by every relay. Three keys under a prefix:
 * `tunnel-owner` (hash hostId -> `{region}:{machineId}`), `tunnel-meta`
 * (hash hostId -> JSON), `tunnel-ttl` (sorted set hostId -> expiry ms).
 * Every operation is one Lua script: one round trip, atomic on the server.
 */
import type { HostId } from "@effect-relay/protocol"
import { Clock, Effect, FiberSet, Layer, Option, Redacted, Schema } from "effect"
import { Redis, type Result } from "ioredis"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { Directory, type DirectoryEntry, DirectoryUnavailable, type EntryRef, type HeartbeatResult } from "./Directory.js"

export interface RedisDirectoryOptions {
  readonly url: Redacted.Redacted<string>
  readonly keyPrefix: string
  readonly ttlMs: number
}

// KEYS: owner, meta, ttl (all three scripts take them in this order)

/** ARGV: hostId, owner, metaJson, expiresAt */
const REGISTER = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1`

/** Is the entry still this owner's and this tunnel's? ARGV: hostId, owner, tunnelId */
const OWNS = `
local function owns(hostId, owner, tunnelId)
  if redis.call('HGET', KEYS[1], hostId) ~= owner then return false end
  local meta = redis.call('HGET', KEYS[2], hostId)
  if not meta then return true end
  local ok, decoded = pcall(cjson.decode, meta)
  return (not ok) or decoded.tunnelId == tunnelId
end
`

/** ARGV: hostId, owner, tunnelId. 1 when deleted, 0 when the entry belongs to someone else now. */
const UNREGISTER = OWNS + `
if not owns(ARGV[1], ARGV[2], ARGV[3]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1`

/** ARGV: hostId, owner, tunnelId, metaJson, expiresAt. 1 extended, 2 restored, 0 moved. */
const HEARTBEAT = OWNS + `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  return 2
end
if not owns(ARGV[1], ARGV[2], ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
return 1`

/** ARGV: hostId, now. {owner, meta} of a live entry, or nil. */
const LOOKUP = `
local expires = redis.call('ZSCORE', KEYS[3], ARGV[1])
if expires and tonumber(expires) <= tonumber(ARGV[2]) then return nil end
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if not owner then return nil end
return { owner, redis.call('HGET', KEYS[2], ARGV[1]) or '' }`

/** Deletes `ids` from all three keys, in batches (a Lua unpack of ~20,000 arguments fails). */
const DELETE_ALL = `
local function deleteAll(ids)
  for i = 1, #ids, 1000 do
    local chunk = { unpack(ids, i, math.min(i + 999, #ids)) }
    redis.call('HDEL', KEYS[1], unpack(chunk))
    redis.call('HDEL', KEYS[2], unpack(chunk))
    redis.call('ZREM', KEYS[3], unpack(chunk))
  end
end
`

/** ARGV: owner. How many entries were deleted. */
const CLEAR_OWN = DELETE_ALL + `
local mine = {}
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 1000)
  cursor = page[1]
  local fields = page[2]
  for i = 1, #fields, 2 do
    if fields[i + 1] == ARGV[1] then mine[#mine + 1] = fields[i] end
  end
until cursor == '0'
deleteAll(mine)
return #mine`

/** ARGV: now. How many expired entries were deleted. */
const SWEEP = DELETE_ALL + `
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
deleteAll(expired)
return #expired`

declare module "ioredis" {
  interface RedisCommander<Context> {
    relayRegister(owner: string, meta: string, ttl: string, hostId: string, ownerId: string, metaJson: string, expiresAt: number): Result<number, Context>
    relayUnregister(owner: string, meta: string, ttl: string, hostId: string, ownerId: string, tunnelId: string): Result<number, Context>
    relayHeartbeat(owner: string, meta: string, ttl: string, hostId: string, ownerId: string, tunnelId: string, metaJson: string, expiresAt: number): Result<number, Context>
    relayLookup(owner: string, meta: string, ttl: string, hostId: string, now: number): Result<[string, string] | null, Context>
    relayClearOwn(owner: string, meta: string, ttl: string, ownerId: string): Result<number, Context>
    relaySweep(owner: string, meta: string, ttl: string, now: number): Result<number, Context>
  }
}

/** What `tunnel-meta` holds for each host. */
const Meta = Schema.parseJson(Schema.Struct({
  tunnelId: Schema.String,
  connectedAt: Schema.Number,
  internalUrl: Schema.String
}))
const encodeMeta = Schema.encodeSync(Meta)
const decodeMeta = Schema.decodeUnknownOption(Meta)

/** The scripts, named as ioredis commands; each runs as EVALSHA with an EVAL fallback. */
const defineScripts = (redis: Redis) => {
  redis.defineCommand("relayRegister", { numberOfKeys: 3, lua: REGISTER })
  redis.defineCommand("relayUnregister", { numberOfKeys: 3, lua: UNREGISTER })
  redis.defineCommand("relayHeartbeat", { numberOfKeys: 3, lua: HEARTBEAT })
  redis.defineCommand("relayLookup", { numberOfKeys: 3, lua: LOOKUP })
  redis.defineCommand("relayClearOwn", { numberOfKeys: 3, lua: CLEAR_OWN })
  redis.defineCommand("relaySweep", { numberOfKeys: 3, lua: SWEEP })
}

/** The ioredis client for the directory's lifetime; it reconnects by itself and never throws unhandled. */
export const client = (url: Redacted.Redacted<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis(Redacted.value(url), {
        lazyConnect: true,
        // Fail fast while disconnected: a lookup answers 503 at once instead of queueing.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        connectTimeout: 2_000,
        // A stalled Redis still looks connected: no command may wait longer than this.
        commandTimeout: 1_000,
        retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2_000)
      })
      defineScripts(redis)
      return redis
    }),
    // Nothing is in flight by then (the drain's clear has been answered): close at once rather
    // than wait for QUIT's reply behind whatever else the event loop has to read.
    (redis) => Effect.sync(() => redis.disconnect())
  ).pipe(
    Effect.tap((redis) =>
      Effect.gen(function*() {
        // The client's events are logged from its callbacks, in fibers the directory's scope ends.
        const run = yield* FiberSet.makeRuntime<never>()
        let wasReady = false
        redis.on("error", (error: Error) => {
          if (wasReady) {
            wasReady = false
            run(Effect.logWarning("directory.redis_error", error.message))
          }
        })
        redis.on("ready", () => {
          wasReady = true
          run(Effect.logInfo("directory.redis_ready"))
        })
        // A first connect that fails is logged; ioredis keeps retrying in the background.
        yield* Effect.tryPromise(() => redis.connect()).pipe(
          Effect.catchAll((e) => Effect.logWarning("directory.redis_unavailable", String(e.error)))
        )
      })
    )
  )

export const make = (options: RedisDirectoryOptions) =>
  Effect.gen(function*() {
    const redis = yield* client(options.url)
    const owner = `${options.keyPrefix}tunnel-owner`
    const meta = `${options.keyPrefix}tunnel-meta`
    const ttl = `${options.keyPrefix}tunnel-ttl`
    const call = <A>(op: string, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (cause) => new DirectoryUnavailable({ op, cause }) }).pipe(
        Effect.tapError(() => RelayMetrics.directoryError(op))
      )
    const metaOf = (entry: DirectoryEntry) =>
      encodeMeta({ tunnelId: entry.tunnelId, connectedAt: entry.connectedAt, internalUrl: entry.internalUrl })

    return Directory.of({
      register: (entry) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          call("register", () => redis.relayRegister(owner, meta, ttl, entry.hostId, entry.owner, metaOf(entry), now + options.ttlMs))),
      unregister: (ref: EntryRef) =>
        Effect.map(call("unregister", () => redis.relayUnregister(owner, meta, ttl, ref.hostId, ref.owner, ref.tunnelId)), (n) => n === 1),
      heartbeat: (entry) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          call("heartbeat", () =>
            redis.relayHeartbeat(owner, meta, ttl, entry.hostId, entry.owner, entry.tunnelId, metaOf(entry), now + options.ttlMs))).pipe(
            Effect.map((n): HeartbeatResult => (n === 1 ? "extended" : n === 2 ? "restored" : "moved"))
          ),
      lookup: (hostId) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => call("lookup", () => redis.relayLookup(owner, meta, ttl, hostId, now))).pipe(
          Effect.map((found) => {
            if (found === null) return Option.none()
            const [entryOwner, json] = found
            // An entry whose meta cannot be read cannot be routed to: as good as absent.
            return Option.map(decodeMeta(json), (meta): DirectoryEntry => ({ hostId: hostId as HostId, owner: entryOwner, ...meta }))
          })
        ),
      clearOwn: (ownerId) => call("clear_own", () => redis.relayClearOwn(owner, meta, ttl, ownerId)),
      sweep: Effect.flatMap(Clock.currentTimeMillis, (now) => call("sweep", () => redis.relaySweep(owner, meta, ttl, now))),
      isAvailable: () => redis.status === "ready"
    })
  })

export const layer = (options: RedisDirectoryOptions) => Layer.scoped(Directory, make(options))
