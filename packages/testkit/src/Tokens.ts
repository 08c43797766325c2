import { Effect } from "effect"
import * as jose from "jose"

export const testSecret = "effect-relay-test-secret-0123456789abcdef"

export interface TokenSpec {
  readonly org?: string
  readonly orgs?: ReadonlyArray<string>
  /** Seconds from now; negative for an expired token; `null` for a token without `exp`. Default 3600. */
  readonly expiresIn?: number | null
  /** Seconds before now the token was issued (`iat`); negative for one issued in the future; `null` for no `iat`. Default 3600. */
  readonly issuedAgo?: number | null
  /** The clock the times count from, in milliseconds (a test's own clock). Default `Date.now()`. */
  readonly now?: number
  readonly secret?: string
}

/** An HS256 token for tests (default: the test secret, issued an hour ago, valid for another hour). */
export const token = (spec: TokenSpec = {}): Effect.Effect<string> =>
  Effect.promise(() => {
    const claims: Record<string, unknown> = {}
    if (spec.org !== undefined) claims.org = spec.org
    if (spec.orgs !== undefined) claims.orgs = [...spec.orgs]
    const now = Math.floor((spec.now ?? Date.now()) / 1000)
    let jwt = new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256" })
    const issuedAgo = spec.issuedAgo === undefined ? 3600 : spec.issuedAgo
    if (issuedAgo !== null) jwt = jwt.setIssuedAt(now - issuedAgo)
    const expiresIn = spec.expiresIn === undefined ? 3600 : spec.expiresIn
    if (expiresIn !== null) jwt = jwt.setExpirationTime(now + expiresIn)
    return jwt.sign(new TextEncoder().encode(spec.secret ?? testSecret))
  })
