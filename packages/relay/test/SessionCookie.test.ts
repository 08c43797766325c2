import { describe, expect, it } from "@effect/vitest"
import { Either, Option, Redacted } from "effect"
import { openSession, sealSession, SessionCookies, sessionKey } from "../src/auth/SessionCookie.js"
import { sessionCookieValues, setSessionCookie, withoutSessionCookie } from "../src/http/Cookies.js"

const hostId = "acme:web" as never
const key = sessionKey(Redacted.make("a-secret-of-at-least-32-bytes-0123456789"))

describe("the session cookie's value", () => {
  it("opens to its host and expiry; another host, an expiry passed, a changed payload or MAC, another key, garbage: refused", () => {
    const value = sealSession(key, { hostId, expiresAt: 2000 })
    expect(value).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/)
    expect(openSession(key, value, hostId, 1999)).toEqual(Either.right({ hostId, expiresAt: 2000 }))
    expect(openSession(key, value, "acme:other" as never, 1999)).toEqual(Either.left("the session cookie is for another host"))
    expect(Either.getLeft(openSession(key, value, hostId, 2000))).toEqual(Option.some(expect.stringContaining("session expired")))
    const [v, payload, mac] = value.split(".") as [string, string, string]
    const longer = Buffer.from(JSON.stringify({ h: "acme:web", e: 9_999_999_999 })).toString("base64url")
    const otherKey = sessionKey(Redacted.make("another-secret-of-at-least-32-bytes-xyz"))
    const bad = [
      `${v}.${longer}.${mac}`,
      `${v}.${payload}.${mac.slice(0, -1)}${mac.endsWith("A") ? "Q" : "A"}`,
      `${v}.${payload}.${mac}=`,
      `v2.${payload}.${mac}`,
      `${v}.${payload}`,
      sealSession(otherKey, { hostId, expiresAt: 2000 }),
      "",
      "garbage",
      "v1..",
      `v1.${Buffer.from("not json").toString("base64url")}.${mac}`
    ]
    for (const value of bad) expect(openSession(key, value, hostId, 1000), value).toEqual(Either.left("invalid session cookie"))
  })

  it("the key is derived from the secret, and is not the secret: a session MAC is no token signature", () => {
    const secret = "a-secret-of-at-least-32-bytes-0123456789"
    expect(key).toHaveLength(32)
    expect(key.equals(Buffer.from(secret).subarray(0, 32))).toBe(false)
    expect(sessionKey(Redacted.make(secret)).equals(key)).toBe(true)
  })

  it("SessionCookies reads expiry on its clock; without a secret it signs with a random key of its own", () => {
    let now = 1_000_000
    const sessions = SessionCookies.make(Option.some(Redacted.make("a-secret-of-at-least-32-bytes-0123456789")), () => now)
    const value = sessions.seal({ hostId, expiresAt: 1001 })
    expect(Either.isRight(sessions.open(value, hostId))).toBe(true)
    now = 1_001_000
    expect(Either.isLeft(sessions.open(value, hostId))).toBe(true)
    const keyless = SessionCookies.make(Option.none())
    expect(Either.isLeft(keyless.open(value, hostId))).toBe(true)
  })
})

describe("the session cookie on the wire", () => {
  it("Set-Cookie: host-only, Path=/, HttpOnly, Lax; Secure and __Host- over https", () => {
    expect(setSessionCookie("v", 60, false)).toBe("effect-relay-session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax")
    expect(setSessionCookie("v", 60.9, true)).toBe("__Host-effect-relay-session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure")
    expect(setSessionCookie("v", 0, false)).toContain("Max-Age=1;")
  })

  it("read from a Cookie header under both names, every one of them; taken out leaving the rest as sent", () => {
    expect(sessionCookieValues("a=1; effect-relay-session=x; __Host-effect-relay-session=y;b=2; effect-relay-session=z")).toEqual(["x", "y", "z"])
    expect(sessionCookieValues(undefined)).toEqual([])
    expect(sessionCookieValues("effect-relay-sessionx=1; xeffect-relay-session=2")).toEqual([])
    expect(withoutSessionCookie("a=1;  effect-relay-session=x; b=2")).toBe("a=1; b=2")
    expect(withoutSessionCookie("__Host-effect-relay-session=y")).toBeUndefined()
    // Without the relay's cookie the header is left byte for byte.
    expect(withoutSessionCookie("a=1;b=2 ;  c")).toBe("a=1;b=2 ;  c")
    expect(withoutSessionCookie(undefined)).toBeUndefined()
  })
})
