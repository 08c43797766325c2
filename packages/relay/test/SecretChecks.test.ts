import { testSecret } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, HashMap, Logger, Option, Redacted } from "effect"
import { checkRelaySettings, type ConfigProblem, type RelaySettings } from "../src/config/RelayConfig.js"
import { testSettings } from "./support.js"

/**
 * The relay refuses to start on an empty secret, and on one under 32 bytes where production is
 * evident (NODE_ENV=production, or FLY_APP_NAME on Fly); on a laptop a short one starts with a
 * `relay.weak_secret` warning. The auth secret and the peer secret are held to the same rules.
 */

const production = { NODE_ENV: "production" }
const fly = { FLY_APP_NAME: "relay-prod", NODE_ENV: "development" }
const laptop = {}
const environments = [["NODE_ENV=production", production], ["FLY_APP_NAME", fly], ["dev", laptop]] as const

const shortSecret = "8bytes!!"
const secret32 = "0123456789abcdef0123456789abcdef"

const withAuthSecret = (secret: string): Partial<RelaySettings> => ({
  auth: { key: { _tag: "Secret", secret: Redacted.make(secret) }, issuer: Option.none(), audience: Option.none() }
})
const withPeerSecret = (secret: string): Partial<RelaySettings> => ({
  peerSecret: Option.some(Redacted.make(secret)),
  redisUrl: Option.some(Redacted.make("redis://127.0.0.1:6379"))
})

/** `checkRelaySettings` in the given environment: the problem it refuses with, if any, and its warnings. */
const check = (overrides: Partial<RelaySettings>, env: Record<string, string>) =>
  Effect.gen(function*() {
    const warnings: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
    const logger = Logger.make(({ annotations, logLevel, message }) => {
      if (logLevel._tag !== "Warning") return
      warnings.push({ message: Array.isArray(message) ? message[0] : message, annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
    })
    const result = yield* checkRelaySettings(testSettings(overrides)).pipe(
      Effect.either,
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger))
    )
    const problem: Option.Option<ConfigProblem> = result._tag === "Left" ? Option.some(result.left) : Option.none()
    return { problem, warnings }
  })

const refusal = (outcome: { problem: Option.Option<ConfigProblem> }) => Option.getOrThrowWith(outcome.problem, () => new Error("expected a refusal"))

describe("secret checks at start-up", () => {
  for (const [name, env] of environments) {
    it.effect(`empty auth secret is refused (${name})`, () =>
      Effect.gen(function*() {
        for (const empty of ["", "  "]) {
          const problem = refusal(yield* check(withAuthSecret(empty), env))
          expect(problem.setting).toBe("RELAY_AUTH_SECRET")
          expect(problem.message).toMatch(/^RELAY_AUTH_SECRET is empty: set a random secret of at least 32 bytes with --auth-secret or RELAY_AUTH_SECRET/)
          expect(problem.message).not.toContain("\n")
        }
      }))

    it.effect(`empty peer secret is refused (${name})`, () =>
      Effect.gen(function*() {
        const problem = refusal(yield* check(withPeerSecret(""), env))
        expect(problem.setting).toBe("RELAY_PEER_SECRET")
        expect(problem.message).toMatch(/^RELAY_PEER_SECRET is empty: .* --peer-secret or RELAY_PEER_SECRET/)
      }))
  }

  for (const [name, env] of environments.slice(0, 2)) {
    it.effect(`a short auth secret or peer secret is refused (${name})`, () =>
      Effect.gen(function*() {
        const auth = refusal(yield* check(withAuthSecret(shortSecret), env))
        expect(auth.setting).toBe("RELAY_AUTH_SECRET")
        expect(auth.message).toContain(`RELAY_AUTH_SECRET is 8 bytes, under the 32 required in production (${name === "FLY_APP_NAME" ? "FLY_APP_NAME is set" : name})`)
        expect(auth.message).toContain("--auth-secret or RELAY_AUTH_SECRET")
        const peer = refusal(yield* check(withPeerSecret(shortSecret), env))
        expect(peer.setting).toBe("RELAY_PEER_SECRET")
        expect(peer.message).toContain("RELAY_PEER_SECRET is 8 bytes, under the 32 required in production")
        expect(peer.message).toContain("--peer-secret or RELAY_PEER_SECRET")
      }))

    it.effect(`32-byte secrets start without a warning (${name})`, () =>
      Effect.gen(function*() {
        const outcome = yield* check({ ...withAuthSecret(secret32), ...withPeerSecret(secret32) }, env)
        expect(outcome.problem).toEqual(Option.none())
        expect(outcome.warnings).toEqual([])
      }))
  }

  it.effect("in dev a short auth secret and a short peer secret start, each with one relay.weak_secret warning (no secret in it)", () =>
    Effect.gen(function*() {
      const outcome = yield* check({ ...withAuthSecret(shortSecret), ...withPeerSecret("peer") }, laptop)
      expect(outcome.problem).toEqual(Option.none())
      expect(outcome.warnings.map((w) => [w.message, w.annotations.setting, w.annotations.bytes])).toEqual([
        ["relay.weak_secret", "RELAY_AUTH_SECRET", 8],
        ["relay.weak_secret", "RELAY_PEER_SECRET", 4]
      ])
      expect(JSON.stringify(outcome.warnings)).not.toContain(shortSecret)
    }))

  it.effect("the bytes are counted in UTF-8, and the test secret is long enough for production", () =>
    Effect.gen(function*() {
      // 16 characters, 32 bytes; 31 ASCII bytes are one short.
      expect((yield* check(withAuthSecret("é".repeat(16)), production)).problem).toEqual(Option.none())
      expect(refusal(yield* check(withAuthSecret(secret32.slice(1)), production)).message).toContain("is 31 bytes")
      expect((yield* check(withAuthSecret(testSecret), production)).problem).toEqual(Option.none())
    }))

  it.effect("a JWKS relay has no auth secret to check", () =>
    Effect.gen(function*() {
      const outcome = yield* check({
        auth: { key: { _tag: "Jwks", url: "https://issuer.example/jwks" }, issuer: Option.none(), audience: Option.none() }
      }, production)
      expect(outcome.problem).toEqual(Option.none())
    }))

  it.effect("with PUBLIC_DOMAIN, a JWKS relay needs RELAY_SESSION_SECRET (sessions are signed by the relay); the session secret is held to the same rules", () =>
    Effect.gen(function*() {
      const jwks = { key: { _tag: "Jwks", url: "https://issuer.example/jwks" }, issuer: Option.none(), audience: Option.none() } as const
      const publicDomain = Option.some("relay.example.com")
      const missing = refusal(yield* check({ auth: jwks, publicDomain }, laptop))
      expect(missing.setting).toBe("RELAY_SESSION_SECRET")
      expect(missing.message).toMatch(/^RELAY_SESSION_SECRET is required with RELAY_AUTH_JWKS_URL and PUBLIC_DOMAIN: .*--session-secret or RELAY_SESSION_SECRET\)$/)
      expect(missing.message).not.toContain("\n")
      // Without a public domain no session is ever made; with a shared secret the key comes from it.
      expect((yield* check({ auth: jwks }, production)).problem).toEqual(Option.none())
      expect((yield* check({ publicDomain }, production)).problem).toEqual(Option.none())
      expect((yield* check({ auth: jwks, publicDomain, sessionSecret: Option.some(Redacted.make(secret32)) }, production)).problem).toEqual(Option.none())
      const short = refusal(yield* check({ auth: jwks, publicDomain, sessionSecret: Option.some(Redacted.make(shortSecret)) }, production))
      expect(short.message).toContain("RELAY_SESSION_SECRET is 8 bytes, under the 32 required in production")
      const empty = refusal(yield* check({ publicDomain, sessionSecret: Option.some(Redacted.make(" ")) }, laptop))
      expect(empty.message).toMatch(/^RELAY_SESSION_SECRET is empty/)
    }))
})
