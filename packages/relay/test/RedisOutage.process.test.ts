import { fakeHost, messageOf, privateRedis, startRelayProcess, startTarget, testSecret, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { agent, served } from "./processSupport.js"

const status = (url: string, t?: string) =>
  Effect.promise(async () => {
    const res = await fetch(url, t ? { headers: { authorization: `Bearer ${t}` } } : {})
    return { status: res.status, body: await res.text() }
  })

const until = <A>(check: Effect.Effect<A>, ok: (a: A) => boolean, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const value = yield* check
      if (ok(value)) return value
      if (Date.now() > deadline) return yield* Effect.dieMessage(`condition not met in ${timeoutMs} ms (last: ${JSON.stringify(value)})`)
      yield* Effect.sleep("25 millis")
    }
  })

/** A relay process on a private Redis. */
const relayOn = (redisUrl: string, machineId: string, extra: Record<string, string> = {}) =>
  startRelayProcess({
    env: {
      RELAY_AUTH_SECRET: testSecret,
      REDIS_URL: redisUrl,
      RELAY_PEER_SECRET: "peer-secret-for-tests-0123456789",
      REGION: "iad",
      MACHINE_ID: machineId,
      ...extra
    }
  })

describe("Redis stops mid-run", () => {
  it.scopedLive("local requests keep working, /ready is 503, lookups 503, new tunnels 1011; after Redis restarts the directory is repopulated within one sweep period", () =>
    Effect.gen(function*() {
      const redis = yield* privateRedis
      const sweepMs = 2000
      const relay = yield* relayOn(redis.url, "outage", { SWEEP_INTERVAL_MS: String(sweepMs) })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(relay, "acme:local", target.url, t)
      yield* served(relay.http, "acme:local", t)
      expect((yield* status(`${relay.http}/ready`)).status).toBe(200)

      yield* redis.stop
      yield* until(status(`${relay.http}/ready`), (r) => r.status === 503, 5000)
      expect(JSON.parse((yield* status(`${relay.http}/ready`)).body).reason).toBe("directory_unavailable")
      expect((yield* status(`${relay.http}/hosts/acme:local/echo`, t)).status).toBe(200)
      const ghost = yield* status(`${relay.http}/hosts/acme:ghost/echo`, t)
      expect(ghost.status).toBe(503)
      expect(JSON.parse(ghost.body).error).toBe("directory_unavailable")
      const newcomer = yield* fakeHost(relay.ws, "acme:newcomer", t)
      expect((yield* Effect.promise(() => newcomer.closed)).code).toBe(1011)
      expect((yield* status(`${relay.http}/health`)).status).toBe(200)

      yield* redis.start // empty: everything it held is gone
      const restartedAt = Date.now()
      const client = new Redis(redis.url)
      yield* Effect.addFinalizer(() => Effect.promise(() => client.quit()))
      yield* until(Effect.promise(() => client.hget("{relay}:owners", "acme:local")), (owner) => owner === "iad:outage", 10_000)
      const repopulatedMs = Date.now() - restartedAt
      console.log(`Redis outage: directory repopulated ${repopulatedMs} ms after Redis restarted (sweep period ${sweepMs} ms)`)
      expect(repopulatedMs).toBeLessThanOrEqual(sweepMs)
      yield* until(status(`${relay.http}/ready`), (r) => r.status === 200, 5000)
      expect(relay.logs.some((l) => messageOf(l) === "relay.startup_cleared")).toBe(true)
    }), 60_000)

  it.scopedLive("a relay started while Redis is down does not crash: it listens, /ready is 503, and it catches up when Redis appears", () =>
    Effect.gen(function*() {
      const redis = yield* privateRedis
      yield* redis.stop
      const relay = yield* relayOn(redis.url, "late")
      expect((yield* status(`${relay.http}/ready`)).status).toBe(503)
      expect(relay.logs.some((l) => messageOf(l) === "relay.startup_clear_failed")).toBe(true)
      yield* redis.start
      yield* Effect.promise(() => relay.waitForLog("relay.startup_cleared", 10_000))
      yield* until(status(`${relay.http}/ready`), (r) => r.status === 200, 5000)
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(relay, "acme:after", target.url, t)
      yield* served(relay.http, "acme:after", t)
    }), 60_000)
})
