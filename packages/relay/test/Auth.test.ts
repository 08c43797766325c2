import type { HostId } from "@effect-relay/protocol"
import { testSecret, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { Auth } from "../src/auth/Auth.js"

const settings = { key: { _tag: "Secret" as const, secret: Redacted.make(testSecret) }, issuer: Option.none(), audience: Option.none() }

describe("Auth", () => {
  it.effect("a verified token is remembered only until it expires; a cached grant still checks the org", () =>
    Effect.gen(function*() {
      let now = Date.now()
      const auth = yield* Auth.make(settings, () => now)
      const t = yield* token({ org: "acme", expiresIn: 60 })
      expect((yield* auth.authorize(t, "acme:a" as HostId)).orgs).toEqual(["acme"])
      expect((yield* auth.authorize(t, "acme:a" as HostId)).orgs).toEqual(["acme"]) // from the cache
      expect((yield* Effect.flip(auth.authorize(t, "other:a" as HostId)))._tag).toBe("Forbidden")
      now += 61_000
      const expired = yield* Effect.flip(auth.verify(t))
      expect(expired._tag).toBe("Unauthorized")
      expect(expired.message).toBe("token expired")
    }))

  it.effect("a bad signature is never cached as valid", () =>
    Effect.gen(function*() {
      const auth = yield* Auth.make(settings)
      const forged = yield* token({ org: "acme", secret: "another-secret-another-secret-xx" })
      for (let i = 0; i < 2; i++) expect((yield* Effect.flip(auth.verify(forged))).message).toBe("bad token signature")
    }))
})
