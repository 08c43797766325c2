/**
 * The relay's session cookie on the wire: its names, the `Set-Cookie` that sets and clears it,
 * reading it from a `Cookie` header, and taking it out of one before a request goes to a host.
 * Every other cookie is the host's and crosses the relay untouched. (What is inside the cookie:
 * `auth/SessionCookie.ts`.)
 *
 * Over https the cookie is `__Host-effect-relay-session`: browsers accept a `__Host-` cookie
 * only with `Secure`, `Path=/` and no `Domain`, so no page under another name can set or
 * overwrite it. Over plain http (a laptop) it is `effect-relay-session`. Both are read, and both
 * are removed before forwarding, whatever the scheme.
 */

export const SessionCookieNames = {
  secure: "__Host-effect-relay-session",
  plain: "effect-relay-session"
} as const

const names: ReadonlySet<string> = new Set(Object.values(SessionCookieNames))

const pairsOf = (header: string | undefined): Array<string> =>
  header === undefined ? [] : header.split(";").map((p) => p.trim()).filter((p) => p !== "")

const nameOf = (pair: string): string => {
  const eq = pair.indexOf("=")
  return (eq === -1 ? pair : pair.slice(0, eq)).trim()
}

/**
 * Every value of the relay's session cookie in a `Cookie` header, in order. There can be several:
 * a page of another host under the same domain could set one with `Domain=` (only over plain
 * http: `__Host-` forbids it), and a forged one must not hide the real one.
 */
export const sessionCookieValues = (header: string | undefined): Array<string> =>
  pairsOf(header).filter((pair) => names.has(nameOf(pair))).map((pair) => pair.slice(pair.indexOf("=") + 1).trim())

/**
 * A `Cookie` header without the relay's session cookie: as it was when it had none, `undefined`
 * when nothing else is left.
 */
export const withoutSessionCookie = (header: string | undefined): string | undefined => {
  if (header === undefined) return undefined
  const pairs = pairsOf(header)
  const kept = pairs.filter((pair) => !names.has(nameOf(pair)))
  if (kept.length === pairs.length) return header
  return kept.length === 0 ? undefined : kept.join("; ")
}

/**
 * `Set-Cookie` for a session: host-only (no `Domain`), `Path=/`, `HttpOnly`, `SameSite=Lax`;
 * `Secure` (and the `__Host-` name) when the client came over https. It lasts `maxAgeSeconds`.
 */
export const setSessionCookie = (value: string, maxAgeSeconds: number, secure: boolean): string =>
  [
    `${secure ? SessionCookieNames.secure : SessionCookieNames.plain}=${value}`,
    "Path=/",
    `Max-Age=${Math.max(1, Math.floor(maxAgeSeconds))}`,
    "HttpOnly",
    "SameSite=Lax",
    ...(secure ? ["Secure"] : [])
  ].join("; ")

/** `Set-Cookie` headers that clear both names (a browser ignores the one it cannot hold). */
export const clearSessionCookies: ReadonlyArray<string> = [
  `${SessionCookieNames.plain}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax`,
  `${SessionCookieNames.secure}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure`
]
