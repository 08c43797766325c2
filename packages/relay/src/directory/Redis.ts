/**
 * The directory in Redis, shared by every relay: four keys under one prefix (see
 * `RedisScripts.ts` for what each holds), all in one Redis Cluster hash slot with the default
 * prefix `{relay}:`. Every operation is one Lua script: one round trip, atomic on the server.
 * Registrations are published on the channel `{prefix}registrations`, which every relay reads
 * on a connection of its own.
 */
import type { HostId } from "@effect-relay/protocol"
import { Clock, Effect, FiberSet, Layer, Option, PubSub, Redacted, Schema, Stream } from "effect"
import { Redis, type Result } from "ioredis"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { Directory, type DirectoryEntry, DirectoryUnavailable, type EntryRef, type HeartbeatResult, type Registration } from "./Directory.js"
import { CLEAR_OWN, HEARTBEAT, LOOKUP, REGISTER, SWEEP, UNREGISTER } from "./RedisScripts.js"

export interface RedisDirectoryOptions {
  readonly url: Redacted.Redacted<string>
  readonly keyPrefix: string
  readonly ttlMs: number
}

declare module "ioredis" {
  interface RedisCommander<Context> {
    relayRegister(...args: [...keys: Keys, hostId: string, owner: string, meta: string, instanceId: string, expiresAt: number, channel: string, event: string]): Result<Array<string>, Context>
    relayUnregister(...args: [...keys: Keys, hostId: string, owner: string, tunnelId: string]): Result<number, Context>
    relayHeartbeat(
      ...args: [...keys: Keys, hostId: string, owner: string, tunnelId: string, meta: string, instanceId: string, expiresAt: number, channel: string, event: string]
    ): Result<number, Context>
    relayLookup(...args: [...keys: Keys, hostId: string, now: number]): Result<Array<string>, Context>
    relayClearOwn(...args: [...keys: Keys, owner: string, pattern: string]): Result<number, Context>
    relaySweep(...args: [...keys: Keys, now: number]): Result<number, Context>
  }
}

/** The four keys, in the order every script takes them. */
type Keys = [tunnels: string, owners: string, instances: string, ttl: string]

/** What `tunnels` holds for each host and owner. */
const Meta = Schema.parseJson(Schema.Struct({
  tunnelId: Schema.String,
  instanceId: Schema.String,
  connectedAt: Schema.Number,
  internalUrl: Schema.String
}))
const encodeMeta = Schema.encodeSync(Meta)
const decodeMeta = Schema.decodeUnknownOption(Meta)

const RegistrationEvent = Schema.parseJson(Schema.Struct({
  hostId: Schema.String,
  owner: Schema.String,
  tunnelId: Schema.String,
  instanceId: Schema.String
}))
const encodeEvent = Schema.encodeSync(RegistrationEvent)
const decodeEvent = Schema.decodeUnknownOption(RegistrationEvent)

/** The scripts, named as ioredis commands; each runs as EVALSHA with an EVAL fallback. */
const defineScripts = (redis: Redis) => {
  redis.defineCommand("relayRegister", { numberOfKeys: 4, lua: REGISTER })
  redis.defineCommand("relayUnregister", { numberOfKeys: 4, lua: UNREGISTER })
  redis.defineCommand("relayHeartbeat", { numberOfKeys: 4, lua: HEARTBEAT })
  redis.defineCommand("relayLookup", { numberOfKeys: 4, lua: LOOKUP })
  redis.defineCommand("relayClearOwn", { numberOfKeys: 4, lua: CLEAR_OWN })
  redis.defineCommand("relaySweep", { numberOfKeys: 4, lua: SWEEP })
}

/** A flat owner, meta, owner, meta... list as entries (one whose meta cannot be read is left out: it cannot be routed to). */
const entriesOf = (hostId: string, flat: ReadonlyArray<string>): Array<DirectoryEntry> => {
  const out: Array<DirectoryEntry> = []
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const meta = decodeMeta(flat[i + 1])
    if (Option.isSome(meta)) out.push({ hostId: hostId as HostId, owner: flat[i]!, ...meta.value })
  }
  return out
}

/** `*|owner` with the glob's special characters escaped: the fields of one owner. */
const fieldsOf = (owner: string) => `*|${owner.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}`

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

/**
 * Registrations published by every relay, read on a connection of its own (a subscribed Redis
 * connection can do nothing else) and offered to the directory's readers; ioredis resubscribes
 * after a reconnect. What nobody reads fast enough is dropped, oldest first.
 */
const subscribe = (redis: Redis, channel: string) =>
  Effect.gen(function*() {
    const events = yield* PubSub.sliding<Registration>(4096)
    const run = yield* FiberSet.makeRuntime<never>()
    const subscriber = yield* Effect.acquireRelease(
      Effect.sync(() => redis.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, lazyConnect: true })),
      (sub) => Effect.sync(() => sub.disconnect())
    )
    subscriber.on("error", () => {})
    subscriber.on("message", (from: string, text: string) => {
      if (from !== channel) return
      const event = decodeEvent(text)
      if (Option.isSome(event)) run(PubSub.publish(events, { ...event.value, hostId: event.value.hostId as HostId }))
    })
    yield* Effect.tryPromise(() => subscriber.connect().then(() => subscriber.subscribe(channel))).pipe(
      Effect.catchAll((e) => Effect.logWarning("directory.subscribe_failed", String(e.error)))
    )
    return events
  })

export const make = (options: RedisDirectoryOptions) =>
  Effect.gen(function*() {
    const redis = yield* client(options.url)
    const keys: Keys = ["tunnels", "owners", "instances", "ttl"].map((k) => `${options.keyPrefix}${k}`) as Keys
    const channel = `${options.keyPrefix}registrations`
    const events = yield* subscribe(redis, channel)
    const call = <A>(op: string, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (cause) => new DirectoryUnavailable({ op, cause }) }).pipe(
        Effect.tapError(() => RelayMetrics.directoryError(op))
      )
    const metaOf = (entry: DirectoryEntry) =>
      encodeMeta({ tunnelId: entry.tunnelId, instanceId: entry.instanceId, connectedAt: entry.connectedAt, internalUrl: entry.internalUrl })
    const eventOf = (entry: DirectoryEntry) =>
      encodeEvent({ hostId: entry.hostId, owner: entry.owner, tunnelId: entry.tunnelId, instanceId: entry.instanceId })
    const expiry = Effect.map(Clock.currentTimeMillis, (now) => now + options.ttlMs)

    return Directory.of({
      register: (entry) =>
        Effect.flatMap(expiry, (expiresAt) =>
          call("register", () =>
            redis.relayRegister(...keys, entry.hostId, entry.owner, metaOf(entry), entry.instanceId, expiresAt, channel, eventOf(entry)))).pipe(
            Effect.map((replaced) => entriesOf(entry.hostId, replaced))
          ),
      unregister: (ref: EntryRef) =>
        Effect.map(call("unregister", () => redis.relayUnregister(...keys, ref.hostId, ref.owner, ref.tunnelId)), (n) => n === 1),
      heartbeat: (entry) =>
        Effect.flatMap(expiry, (expiresAt) =>
          call("heartbeat", () =>
            redis.relayHeartbeat(...keys, entry.hostId, entry.owner, entry.tunnelId, metaOf(entry), entry.instanceId, expiresAt, channel, eventOf(entry)))).pipe(
            Effect.map((n): HeartbeatResult => (n === 1 ? "extended" : n === 2 ? "restored" : "replaced"))
          ),
      lookup: (hostId) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => call("lookup", () => redis.relayLookup(...keys, hostId, now))).pipe(
          Effect.map((flat) => entriesOf(hostId, flat))
        ),
      clearOwn: (owner) => call("clear_own", () => redis.relayClearOwn(...keys, owner, fieldsOf(owner))),
      sweep: Effect.flatMap(Clock.currentTimeMillis, (now) => call("sweep", () => redis.relaySweep(...keys, now))),
      registrations: Stream.fromPubSub(events),
      isAvailable: () => redis.status === "ready"
    })
  })

export const layer = (options: RedisDirectoryOptions) => Layer.scoped(Directory, make(options))
