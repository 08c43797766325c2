/**
 * The browser session a host's hostname gets after a `?token=` login: a value the relay signs
 * itself, so the JWT is never stored in the browser. It names one host and an expiry no later
 * than the token's:
 *
 *     v1.<base64url of {"h": hostId, "e": expiry in epoch seconds}>.<base64url of its HMAC-SHA256>
 *
 * The MAC covers `v1.<payload>`. Its key is the relay's own for sessions, never a token key:
 * HKDF-SHA256 of `RELAY_SESSION_SECRET`, or else of `RELAY_AUTH_SECRET`, with its own salt and
 * info, so a session MAC is never a valid token signature and neither key tells anything of the
 * other. Every relay derives the same key from the same secret; changing it ends every session.
 */
import { type HostId } from "@effect-relay/protocol"
import { Context, Effect, Either, Layer, Option, Redacted } from "effect"
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto"
import { RelayConfig } from "../config/RelayConfig.js"

export interface Session {
  readonly hostId: HostId
  /** Epoch seconds; the token's `exp` at most. */
  readonly expiresAt: number
}

const version = "v1"
const macBytes = 32

/** The session key from a secret: HKDF-SHA256, 32 bytes. */
export const sessionKey = (secret: Redacted.Redacted<string>): Buffer =>
  Buffer.from(hkdfSync("sha256", Buffer.from(Redacted.value(secret), "utf8"), "effect-relay", "session-cookie v1", macBytes))

const mac = (key: Buffer, signed: string): Buffer => createHmac("sha256", key).update(signed).digest()

/** A session as a cookie value (only characters a cookie value may hold: letters, digits, `-`, `_`, `.`). */
export const sealSession = (key: Buffer, session: Session): string => {
  const payload = Buffer.from(JSON.stringify({ h: session.hostId, e: session.expiresAt })).toString("base64url")
  const signed = `${version}.${payload}`
  return `${signed}.${mac(key, signed).toString("base64url")}`
}

/**
 * The session in a cookie value, when it is the relay's, unaltered, for `hostId` and not expired
 * at `nowSeconds`; else why not (said to the client as a 401's message). The MAC is compared in
 * constant time before anything of the payload is read.
 */
export const openSession = (key: Buffer, value: string, hostId: HostId, nowSeconds: number): Either.Either<Session, string> => {
  const invalid = Either.left("invalid session cookie")
  const parts = value.split(".")
  if (parts.length !== 3 || parts[0] !== version) return invalid
  // Compared as text: a decoder would read a few different spellings as the same bytes.
  const given = Buffer.from(parts[2]!, "utf8")
  const expected = Buffer.from(mac(key, `${parts[0]}.${parts[1]}`).toString("base64url"), "utf8")
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return invalid
  let payload: unknown
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"))
  } catch {
    return invalid
  }
  const { h, e } = (payload ?? {}) as { h?: unknown; e?: unknown }
  if (typeof h !== "string" || typeof e !== "number") return invalid
  if (h !== hostId) return Either.left("the session cookie is for another host")
  if (e <= nowSeconds) return Either.left("session expired: open the page with ?token= again")
  return Either.right({ hostId, expiresAt: e })
}

/** Signs and checks the relay's browser sessions with the key of this relay's configuration. */
export class SessionCookies extends Context.Tag("effect-relay/SessionCookies")<SessionCookies, {
  readonly seal: (session: Session) => string
  readonly open: (value: string, hostId: HostId) => Either.Either<Session, string>
}>() {
  /** `now`: the clock expiries are read against, in milliseconds (tests pass their own). */
  static make = (secret: Option.Option<Redacted.Redacted<string>>, now: () => number = Date.now) => {
    // No secret: the configuration has no public domain (checkRelaySettings requires one with it),
    // so no session is ever made; a random key keeps that true even for a program that skips the check.
    const key = Option.match(secret, { onNone: () => randomBytes(macBytes), onSome: sessionKey })
    return SessionCookies.of({
      seal: (session) => sealSession(key, session),
      open: (value, hostId) => openSession(key, value, hostId, Math.floor(now() / 1000))
    })
  }

  static layer = Layer.effect(
    SessionCookies,
    Effect.map(RelayConfig, (config) =>
      SessionCookies.make(
        Option.orElse(config.sessionSecret, () => (config.auth.key._tag === "Secret" ? Option.some(config.auth.key.secret) : Option.none()))
      ))
  )
}
