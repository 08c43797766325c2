import { Effect } from "effect"
import * as jose from "jose"

export const testSecret = "effect-relay-test-secret-0123456789abcdef"

export interface TokenSpec {
  readonly org?: string
  readonly orgs?: ReadonlyArray<string>
  /** Seconds from now; negative for an expired token. */
  readonly expiresIn?: number
  readonly secret?: string
}

/** An HS256 token for tests (default: the test secret, 1 hour). */
export const token = (spec: TokenSpec = {}): Effect.Effect<string> =>
  Effect.promise(() => {
    const claims: Record<string, unknown> = {}
    if (spec.org !== undefined) claims.org = spec.org
    if (spec.orgs !== undefined) claims.orgs = [...spec.orgs]
    const now = Math.floor(Date.now() / 1000)
    return new jose.SignJWT(claims)
      .setProtectedHeader({ alg: "HS256" })
      .setIssuedAt(now - 3600)
      .setExpirationTime(now + (spec.expiresIn ?? 3600))
      .sign(new TextEncoder().encode(spec.secret ?? testSecret))
  })
