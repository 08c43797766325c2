import { Duration, Effect, Redacted } from "effect"
import * as jose from "jose"

export interface TokenClaims {
  /** Orgs the token grants: one becomes `org`, several become `orgs`. */
  readonly orgs: ReadonlyArray<string>
  readonly ttl: Duration.DurationInput
  readonly subject?: string
  readonly issuer?: string
  readonly audience?: string
}

/** Signs an HS256 token with the relay's secret (what `effect-relay token` prints). */
export const mintToken = (secret: Redacted.Redacted<string>, claims: TokenClaims): Effect.Effect<string> =>
  Effect.promise(() => {
    const orgClaims = claims.orgs.length === 1 ? { org: claims.orgs[0] } : { orgs: [...claims.orgs] }
    // One reading of the clock, so exp - iat is exactly the ttl (the relay bounds that lifetime).
    const iat = Math.floor(Date.now() / 1000)
    let jwt = new jose.SignJWT(orgClaims)
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt(iat)
      .setExpirationTime(iat + Math.ceil(Duration.toSeconds(claims.ttl)))
    if (claims.subject) jwt = jwt.setSubject(claims.subject)
    if (claims.issuer) jwt = jwt.setIssuer(claims.issuer)
    if (claims.audience) jwt = jwt.setAudience(claims.audience)
    return jwt.sign(new TextEncoder().encode(Redacted.value(secret)))
  })
