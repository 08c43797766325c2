/**
 * The tokens the fuzz uses: valid ones for org `fuzz`, and hostile ones: expired, another org,
 * another secret, `alg: none`, a header that lies about the algorithm, and tokens signed with the
 * right secret whose claims are of the wrong shape (the signature checks, the claims must not).
 */
import { Effect } from "effect"
import { createHmac } from "node:crypto"
import { testSecret, token } from "../Tokens.js"

export interface FuzzTokens {
  /** Accepted for org `fuzz`. */
  readonly valid: string
  readonly validOrgs: string
  /** Refused, each for its own reason. */
  readonly hostile: ReadonlyArray<{ readonly name: string; readonly token: string }>
}

const b64url = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url")

/** A JWT assembled by hand: any header, any payload (JSON or not), signed HS256 with `secret`, or `signature` as given. */
export const handMadeJwt = (header: unknown, payload: unknown, options: { readonly secret?: string; readonly signature?: string } = {}) => {
  const input = `${b64url(header)}.${b64url(payload)}`
  const signature = options.signature ?? createHmac("sha256", options.secret ?? testSecret).update(input).digest("base64url")
  return `${input}.${signature}`
}

export const fuzzTokens: Effect.Effect<FuzzTokens> = Effect.gen(function*() {
  const now = Math.floor(Date.now() / 1000)
  const claims = { org: "fuzz", iat: now - 60, exp: now + 3600 }
  const hs256 = { alg: "HS256", typ: "JWT" }
  const signedClaims = (name: string, payload: unknown) => ({ name, token: handMadeJwt(hs256, payload) })
  return {
    valid: yield* token({ org: "fuzz" }),
    validOrgs: yield* token({ orgs: ["other", "fuzz"] }),
    hostile: [
      { name: "expired", token: yield* token({ org: "fuzz", expiresIn: -60 }) },
      { name: "other org", token: yield* token({ org: "other" }) },
      { name: "other secret", token: yield* token({ org: "fuzz", secret: "not-the-relay-secret-0123456789abcdef" }) },
      { name: "alg none", token: handMadeJwt({ alg: "none", typ: "JWT" }, claims, { signature: "" }) },
      { name: "alg none, signed", token: handMadeJwt({ alg: "none" }, claims) },
      { name: "alg HS512 header, HS256 signature", token: handMadeJwt({ alg: "HS512" }, claims) },
      { name: "alg RS256 header", token: handMadeJwt({ alg: "RS256" }, claims) },
      { name: "no alg", token: handMadeJwt({ typ: "JWT" }, claims) },
      { name: "crit header", token: handMadeJwt({ alg: "HS256", crit: ["x"], x: 1 }, claims) },
      signedClaims("org a number", { ...claims, org: 123 }),
      signedClaims("org an array", { ...claims, org: ["fuzz"] }),
      signedClaims("org an object", { ...claims, org: { fuzz: true } }),
      signedClaims("orgs a string", { ...claims, org: undefined, orgs: "fuzz" }),
      signedClaims("orgs of odd items", { ...claims, org: undefined, orgs: [1, null, {}, ["fuzz"]] }),
      signedClaims("org with a NUL", { ...claims, org: "fuzz\u0000" }),
      signedClaims("org empty", { ...claims, org: "" }),
      signedClaims("exp a string", { ...claims, exp: "never" }),
      signedClaims("exp huge", { ...claims, exp: 1e300 }),
      signedClaims("no exp", { org: "fuzz" }),
      signedClaims("nbf in the future", { ...claims, nbf: now + 3600 }),
      signedClaims("payload an array", [claims]),
      signedClaims("payload a string", "fuzz"),
      signedClaims("8000 orgs", { ...claims, org: undefined, orgs: Array.from({ length: 8000 }, (_, i) => `o${i}`) }),
      { name: "payload not JSON", token: handMadeJwt(hs256, "not json {") },
      { name: "header not JSON", token: `${Buffer.from("{alg").toString("base64url")}.${b64url(claims)}.x` },
      { name: "two parts", token: `${b64url(hs256)}.${b64url(claims)}` },
      { name: "four parts", token: `${handMadeJwt(hs256, claims)}.x` },
      { name: "garbage", token: "abc" },
      { name: "dots", token: ".." },
      { name: "not base64url", token: "a$b.c%d.e!f" }
    ]
  }
})
