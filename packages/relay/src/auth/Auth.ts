import { orgOf, type HostId } from "@effect-relay/protocol"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { createSecretKey } from "node:crypto"
import * as jose from "jose"
import { RelayConfig, type AuthSettings } from "../config/RelayConfig.js"
import { Forbidden, Unauthorized } from "./AuthErrors.js"
import { lifetimeProblem } from "./TokenLifetime.js"

/** What a verified token grants: the orgs whose hosts it may register or call. */
export interface Grant {
  readonly orgs: ReadonlyArray<string>
  readonly subject: Option.Option<string>
  /** The token's expiry (`exp`), in seconds since the epoch: nothing made from it may outlive it. */
  readonly expiresAt: number
}

/** What `Auth` holds tokens to beyond their signature; `now` is the clock for expiry checks (tests pass their own). */
export interface TokenRules {
  /** The longest lifetime accepted (`exp - iat`, or `exp - now` without `iat`). */
  readonly maxLifetimeSeconds: number
  readonly now?: () => number
}

/**
 * Verifies bearer tokens (JWT, HS256 secret or JWKS: an `exp` is required and the lifetime is
 * bounded) and checks that the token's `org` / `orgs` claims cover a host's org.
 */
export class Auth extends Context.Tag("effect-relay/Auth")<Auth, {
  readonly verify: (token: string | undefined) => Effect.Effect<Grant, Unauthorized>
  readonly authorize: (token: string | undefined, hostId: HostId) => Effect.Effect<Grant, Unauthorized | Forbidden>
}>() {
  static make = (settings: AuthSettings, rules: TokenRules) =>
    Effect.sync(() => {
      const now = rules.now ?? Date.now
      const key = settings.key._tag === "Secret"
        // A key object made once: given raw bytes, jose imports them again for every token.
        ? createSecretKey(Buffer.from(Redacted.value(settings.key.secret), "utf8"))
        : jose.createRemoteJWKSet(new URL(settings.key.url))
      const options: jose.JWTVerifyOptions = {
        algorithms: settings.key._tag === "Secret" ? ["HS256"] : ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
        ...Option.match(settings.issuer, { onNone: () => ({}), onSome: (issuer) => ({ issuer }) }),
        ...Option.match(settings.audience, { onNone: () => ({}), onSome: (audience) => ({ audience }) })
      }
      // A client sends the same token with every request: a verified token's grant is kept until
      // the token expires (bounded; the oldest entries go first), so only new tokens cost a verify.
      // Only tokens that passed every check (signature, claims, exp and lifetime) are kept.
      const verified = new Map<string, { readonly grant: Grant; readonly expiresAt: number }>()
      const remember = (token: string, grant: Grant, exp: number) => {
        if (verified.size >= 10_000) verified.delete(verified.keys().next().value!)
        verified.set(token, { grant, expiresAt: exp * 1000 })
      }
      const verify = (token: string | undefined): Effect.Effect<Grant, Unauthorized> => {
        if (token === undefined || token === "") return Effect.fail(new Unauthorized({ reason: "missing token" }))
        const known = verified.get(token)
        if (known !== undefined) {
          if (now() < known.expiresAt) return Effect.succeed(known.grant)
          verified.delete(token)
        }
        return Effect.tryPromise({
          try: () =>
            typeof key === "function"
              ? jose.jwtVerify(token, key, { ...options, currentDate: new Date(now()) })
              : jose.jwtVerify(token, key, { ...options, currentDate: new Date(now()) }),
          catch: (e) => new Unauthorized({ reason: describe(e) })
        }).pipe(Effect.flatMap(({ payload }) => {
          const problem = lifetimeProblem(payload, rules.maxLifetimeSeconds, Math.floor(now() / 1000))
          if (problem !== undefined) return Effect.fail(new Unauthorized({ reason: problem }))
          const grant = grantOf(payload, payload.exp!)
          remember(token, grant, payload.exp!)
          return Effect.succeed(grant)
        }))
      }
      const authorize = (token: string | undefined, hostId: HostId) => {
        const org = orgOf(hostId)
        return verify(token).pipe(
          // The org goes along so an answer can say which org a token is needed for.
          Effect.mapError((e) => new Unauthorized({ reason: e.reason, org })),
          Effect.filterOrFail((grant) => grant.orgs.includes(org), () => new Forbidden({ org }))
        )
      }
      return Auth.of({ verify, authorize })
    })

  static layer = Layer.effect(
    Auth,
    Effect.flatMap(RelayConfig, (config) => Auth.make(config.auth, { maxLifetimeSeconds: config.maxTokenLifetimeSeconds }))
  )
}

const grantOf = (payload: jose.JWTPayload, expiresAt: number): Grant => {
  const orgs: Array<string> = []
  if (typeof payload.org === "string") orgs.push(payload.org)
  if (Array.isArray(payload.orgs)) {
    for (const org of payload.orgs) if (typeof org === "string") orgs.push(org)
  }
  return { orgs, subject: Option.fromNullable(payload.sub), expiresAt }
}

const describe = (e: unknown): string => {
  if (e instanceof jose.errors.JWTExpired) return "token expired"
  if (e instanceof jose.errors.JWSSignatureVerificationFailed) return "bad token signature"
  if (e instanceof jose.errors.JWTClaimValidationFailed) return `token claim ${e.claim} invalid`
  if (e instanceof jose.errors.JOSEAlgNotAllowed) return "token algorithm not allowed"
  if (e instanceof jose.errors.JOSEError) return `invalid token (${e.code})`
  return "invalid token"
}
