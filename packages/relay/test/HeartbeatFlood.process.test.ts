/**
 * A host's pongs must not become load on the Redis every relay shares: however many it sends,
 * its directory entry is refreshed at most once a ping period. Counted on a private Redis, where
 * nothing else runs a command.
 */
import { privateRedis, startRelayProcess, testSecret, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const floodHost = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../testkit/src/children/flood-host.mjs")

/** Script calls (every directory operation is one) the server has run so far. */
const scriptCalls = async (redis: Redis) => {
  const stats = await redis.info("commandstats")
  let calls = 0
  for (const match of stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) calls += Number(match[1])
  return calls
}

describe("heartbeats under a pong flood", () => {
  it.scopedLive("a host flooding pongs for 3 s costs at most one Redis command per ping period", () =>
    Effect.gen(function*() {
      const store = yield* privateRedis
      const redis = new Redis(store.url, { lazyConnect: true })
      redis.on("error", () => {})
      yield* Effect.acquireRelease(Effect.promise(() => redis.connect()), () => Effect.promise(() => redis.quit()))
      const pingIntervalMs = 500
      const relay = yield* startRelayProcess({
        env: {
          RELAY_AUTH_SECRET: testSecret,
          REDIS_URL: store.url,
          RELAY_PEER_SECRET: "heartbeat-flood-peer-secret-0123456789",
          PING_INTERVAL_MS: String(pingIntervalMs)
        }
      })
      const t = yield* token({ org: "acme" })
      const flooder = spawn(process.execPath, [floodHost, relay.ws, "acme:pongs", t, "3", "pong"], { stdio: ["ignore", "pipe", "inherit"] })
      yield* Effect.addFinalizer(() => Effect.sync(() => flooder.kill("SIGKILL")))
      let report = ""
      flooder.stdout!.on("data", (d) => (report += d.toString()))
      // Counted from the tunnel's registration on: that write, then the heartbeats.
      yield* Effect.promise(() => new Promise<void>((resolve) => flooder.stdout!.once("data", () => resolve())))
      while ((yield* Effect.promise(() => redis.hlen("{relay}:tunnels"))) === 0) yield* Effect.sleep("10 millis")
      const before = yield* Effect.promise(() => scriptCalls(redis))
      const start = Date.now()
      yield* Effect.promise(() => new Promise<void>((resolve) => flooder.on("exit", () => resolve())))
      const elapsedMs = Date.now() - start
      const calls = (yield* Effect.promise(() => scriptCalls(redis))) - before
      const pongs = JSON.parse(report.trim().split("\n").at(-1)!).sent as number
      const periods = Math.ceil(elapsedMs / pingIntervalMs)
      console.log(`pong flood: ${pongs} pongs in ${elapsedMs} ms, ${calls} directory commands (${periods} ping periods)`)
      expect(pongs).toBeGreaterThan(5_000)
      expect(calls).toBeLessThanOrEqual(periods + 1)
    }), 30_000)
})
