import { relayBin, spawnLogging, testSecret } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as jose from "jose"

/**
 * The real CLI as a child process: a weak secret is one line on stderr and exit 1 before the
 * relay listens or touches Redis, and `effect-relay token` will not mint a token the relay's
 * maximum lifetime would refuse.
 */

/** Runs the CLI to its end: exit code and what it wrote. (Variables set to "" count as unset.) */
const run = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.promise(async () => {
    const proc = spawnLogging(relayBin, args, { NODE_ENV: "development", FLY_APP_NAME: "", ...env })
    const exit = await proc.exited
    await proc.closed
    return { code: exit.code, logs: proc.logs.map((l) => l.message), ...proc.output() }
  })

const serve = ["serve", "--port", "0", "--bind", "127.0.0.1"]

describe("token and secret limits through the CLI", () => {
  it.live("serve refuses an empty or short secret in production with exit 1 and one stderr line, before listening or Redis", () =>
    Effect.gen(function*() {
      const cases: Array<[Record<string, string>, RegExp]> = [
        [
          { NODE_ENV: "production", RELAY_AUTH_SECRET: "" },
          /^effect-relay: RELAY_AUTH_SECRET is empty: set a random secret of at least 32 bytes with --auth-secret or RELAY_AUTH_SECRET/
        ],
        [
          { FLY_APP_NAME: "relay-prod", RELAY_AUTH_SECRET: "8bytes!!" },
          /^effect-relay: RELAY_AUTH_SECRET is 8 bytes, under the 32 required in production \(FLY_APP_NAME is set\): .*--auth-secret or RELAY_AUTH_SECRET/
        ],
        [
          // Redis on a port nothing listens on: reaching for it would log connection errors, not exit at once.
          { NODE_ENV: "production", RELAY_AUTH_SECRET: testSecret, RELAY_PEER_SECRET: "short", REDIS_URL: "redis://127.0.0.1:1" },
          /^effect-relay: RELAY_PEER_SECRET is 5 bytes, under the 32 required in production \(NODE_ENV=production\): .*--peer-secret or RELAY_PEER_SECRET/
        ]
      ]
      const results = yield* Effect.forEach(cases, ([env]) => run(serve, env), { concurrency: 3 })
      results.forEach((out, i) => {
        const [env, line] = cases[i]
        const what = JSON.stringify(env)
        expect(out.code, what).toBe(1)
        expect(out.stderr.split("\n"), what).toHaveLength(2) // one line and its newline
        expect(out.stderr, what).toMatch(line)
        expect(out.stdout, what).toBe("") // no relay.listening, no relay.startup_cleared, no directory log
        expect(out.logs, what).toEqual([])
      })
    }), 60_000)

  it.live("token --ttl is held to the maximum token lifetime (30 days by default, or the configured one)", () =>
    Effect.gen(function*() {
      const env = { RELAY_AUTH_SECRET: testSecret }
      const [tooLong, thirtyDays, overConfigured, raised] = yield* Effect.all([
        run(["token", "--org", "acme", "--ttl", "31d"], env),
        run(["token", "--org", "acme", "--ttl", "30d"], env),
        run(["token", "--org", "acme", "--ttl", "2h"], { ...env, RELAY_AUTH_MAX_TOKEN_LIFETIME_SECONDS: "3600" }),
        run(["token", "--org", "acme", "--ttl", "2h", "--max-token-lifetime-seconds", "7200"], { ...env, RELAY_AUTH_MAX_TOKEN_LIFETIME_SECONDS: "3600" })
      ], { concurrency: 2 })
      expect(tooLong.code).toBe(1)
      expect(tooLong.stdout).toBe("")
      expect(tooLong.stderr).toBe(
        "effect-relay: --ttl 31d is over the 30 day maximum token lifetime (raise it with --max-token-lifetime-seconds or RELAY_AUTH_MAX_TOKEN_LIFETIME_SECONDS, on the relays too)\n"
      )
      expect(overConfigured.code).toBe(1)
      expect(overConfigured.stderr).toMatch(/^effect-relay: --ttl 2h is over the 1 hour maximum token lifetime .*\n$/)
      for (const [minted, seconds] of [[thirtyDays, 30 * 24 * 3600], [raised, 7200]] as const) {
        expect(minted.code, minted.stderr).toBe(0)
        const { payload } = yield* Effect.promise(() => jose.jwtVerify(minted.stdout.trim(), new TextEncoder().encode(testSecret)))
        expect(payload.exp! - payload.iat!).toBe(seconds)
      }
    }), 60_000)
})
