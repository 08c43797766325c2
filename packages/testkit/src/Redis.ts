import { Effect } from "effect"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"

/** The Redis tests use: `REDIS_URL`, else the machine's server on 127.0.0.1:6379. */
export const redisUrl = () => process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

/**
 * A unique key prefix for one test file, and a client; the prefix's keys are deleted when the
 * scope closes. Fails with a clear message when Redis cannot be reached: Redis tests are never
 * skipped silently.
 */
export const redisPrefix = (name: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const redis = new Redis(redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null })
        redis.on("error", () => {})
        await redis.connect()
        await redis.ping()
        return { redis, prefix: `test:${name}:${randomBytes(4).toString("hex")}:` }
      },
      catch: (e) =>
        new Error(
          `Redis is not reachable at ${redisUrl()} (${String(e)}). These tests need a real Redis: ` +
            `start one (redis-server --port 6379) or point REDIS_URL at one.`
        )
    }),
    ({ prefix, redis }) =>
      Effect.promise(async () => {
        const keys = await redis.keys(`${prefix}*`)
        if (keys.length > 0) await redis.del(...keys)
        await redis.quit()
      })
  )
