import type { HostId } from "@effect-relay/protocol"
import { testSecret, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { Auth } from "../src/auth/Auth.js"
import { describeSeconds } from "../src/auth/TokenLifetime.js"

const settings = { key: { _tag: "Secret" as const, secret: Redacted.make(testSecret) }, issuer: Option.none(), audience: Option.none() }
const day = 24 * 3600
const thirtyDays = 30 * day

/** An Auth on a clock the test moves, with the default 30-day maximum lifetime unless told. */
const authAt = (start: number, maxLifetimeSeconds = thirtyDays) =>
  Effect.gen(function*() {
    const clock = { now: start }
    const auth = yield* Auth.make(settings, { maxLifetimeSeconds, now: () => clock.now })
    return { auth, clock }
  })

/** The reason `verify` refuses `t` with, asked twice: a refused token is never cached as valid. */
const refusedTwice = (auth: Auth["Type"], t: string) =>
  Effect.gen(function*() {
    const first = yield* Effect.flip(auth.verify(t))
    const second = yield* Effect.flip(auth.verify(t))
    expect(first._tag).toBe("Unauthorized")
    expect(second.message).toBe(first.message)
    return first.message
  })

describe("Auth", () => {
  it.effect("a verified token is remembered only until it expires; a cached grant still checks the org", () =>
    Effect.gen(function*() {
      const { auth, clock } = yield* authAt(Date.now())
      const t = yield* token({ org: "acme", expiresIn: 60, now: clock.now })
      expect((yield* auth.authorize(t, "acme:a" as HostId)).orgs).toEqual(["acme"])
      expect((yield* auth.authorize(t, "acme:a" as HostId)).orgs).toEqual(["acme"]) // from the cache
      expect((yield* Effect.flip(auth.authorize(t, "other:a" as HostId)))._tag).toBe("Forbidden")
      clock.now += 61_000
      const expired = yield* Effect.flip(auth.verify(t))
      expect(expired._tag).toBe("Unauthorized")
      expect(expired.message).toBe("token expired")
    }))

  it.effect("a bad signature is never cached as valid", () =>
    Effect.gen(function*() {
      const { auth } = yield* authAt(Date.now())
      const forged = yield* token({ org: "acme", secret: "another-secret-another-secret-xx" })
      for (let i = 0; i < 2; i++) expect((yield* Effect.flip(auth.verify(forged))).message).toBe("bad token signature")
    }))

  it.effect("a token without exp is refused, with or without iat, and never cached", () =>
    Effect.gen(function*() {
      const { auth, clock } = yield* authAt(Date.now())
      for (const issuedAgo of [60, null]) {
        const t = yield* token({ org: "acme", expiresIn: null, issuedAgo, now: clock.now })
        expect(yield* refusedTwice(auth, t)).toBe("token has no expiry (exp)")
      }
    }))

  it.effect("lifetime from iat: exp - iat over the maximum is refused even when exp is near; exactly the maximum passes", () =>
    Effect.gen(function*() {
      const { auth, clock } = yield* authAt(Date.now())
      // Issued 31 days ago, one more hour to go: a 31-day token.
      const old = yield* token({ org: "acme", issuedAgo: 31 * day, expiresIn: 3600, now: clock.now })
      expect(yield* refusedTwice(auth, old)).toBe("token lifetime over the 30 day maximum")
      // Issued now, valid 30 days and a second.
      const long = yield* token({ org: "acme", issuedAgo: 0, expiresIn: thirtyDays + 1, now: clock.now })
      expect(yield* refusedTwice(auth, long)).toBe("token lifetime over the 30 day maximum")
      const exact = yield* token({ org: "acme", issuedAgo: 0, expiresIn: thirtyDays, now: clock.now })
      expect((yield* auth.verify(exact)).orgs).toEqual(["acme"])
      // A 100-year token, the example.
      const century = yield* token({ org: "acme", issuedAgo: 0, expiresIn: 100 * 365 * day, now: clock.now })
      expect(yield* refusedTwice(auth, century)).toBe("token lifetime over the 30 day maximum")
    }))

  it.effect("lifetime without iat: exp - now over the maximum is refused; under it passes", () =>
    Effect.gen(function*() {
      const { auth, clock } = yield* authAt(Date.now())
      const long = yield* token({ org: "acme", issuedAgo: null, expiresIn: 31 * day, now: clock.now })
      expect(yield* refusedTwice(auth, long)).toBe("token lifetime over the 30 day maximum")
      const fine = yield* token({ org: "acme", issuedAgo: null, expiresIn: 29 * day, now: clock.now })
      expect((yield* auth.verify(fine)).orgs).toEqual(["acme"])
    }))

  it.effect("an iat in the future is refused beyond a minute of clock skew", () =>
    Effect.gen(function*() {
      const { auth, clock } = yield* authAt(Date.now())
      const ahead = yield* token({ org: "acme", issuedAgo: -600, expiresIn: 3600, now: clock.now })
      expect(yield* refusedTwice(auth, ahead)).toBe("token issued in the future (iat)")
      const skewed = yield* token({ org: "acme", issuedAgo: -30, expiresIn: 3600, now: clock.now })
      expect((yield* auth.verify(skewed)).orgs).toEqual(["acme"])
    }))

  it.effect("the maximum is the configured one, and the reason says it", () =>
    Effect.gen(function*() {
      const { auth, clock } = yield* authAt(Date.now(), 3600)
      const twoHours = yield* token({ org: "acme", issuedAgo: 0, expiresIn: 7200, now: clock.now })
      expect(yield* refusedTwice(auth, twoHours)).toBe("token lifetime over the 1 hour maximum")
      const hour = yield* token({ org: "acme", issuedAgo: 0, expiresIn: 3600, now: clock.now })
      expect((yield* auth.verify(hour)).orgs).toEqual(["acme"])
      expect([describeSeconds(thirtyDays), describeSeconds(90), describeSeconds(120), describeSeconds(36 * 3600)])
        .toEqual(["30 day", "90 second", "2 minute", "36 hour"])
    }))
})
