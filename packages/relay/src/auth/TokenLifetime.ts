/**
 * What the relay asks of a token's times beyond a valid signature: an expiry (`exp`), and a
 * lifetime no longer than the configured maximum, so no token is good forever.
 */

/** How far ahead of the relay's clock a token's `iat` may be (the issuer's clock may run a little fast). */
export const iatClockSkewSeconds = 60

export interface TokenTimes {
  readonly exp?: number | undefined
  readonly iat?: number | undefined
}

/**
 * Why a token's times are refused, or `undefined` when they are fine. The lifetime is
 * `exp - iat`, or `exp - now` for a token without `iat`. (Expiry itself is checked by the JWT
 * verification before this.)
 */
export const lifetimeProblem = (token: TokenTimes, maxLifetimeSeconds: number, nowSeconds: number): string | undefined => {
  if (token.exp === undefined) return "token has no expiry (exp)"
  if (token.iat !== undefined && token.iat > nowSeconds + iatClockSkewSeconds) return "token issued in the future (iat)"
  const lifetime = token.exp - (token.iat ?? nowSeconds)
  if (lifetime > maxLifetimeSeconds) return `token lifetime over the ${describeSeconds(maxLifetimeSeconds)} maximum`
  return undefined
}

/** A number of seconds as people say it before "maximum": "30 day", "12 hour", "90 second". */
export const describeSeconds = (seconds: number): string => {
  for (const [unit, size] of [["day", 86_400], ["hour", 3600], ["minute", 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size} ${unit}`
  }
  return `${seconds} second`
}
