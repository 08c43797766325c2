import { decodeHostId, type HostId, LogLimits } from "@effect-relay/protocol"
import { Either } from "effect"
import { BadHostId, BadHostname } from "./HttpErrors.js"

/**
 * How a client request names a host, in one place. Two forms:
 * - the path: `/hosts/{org}:{name}/...` on any of the relay's names (API clients);
 * - the hostname: `{name}--{org}.PUBLIC_DOMAIN`, where every path is the host's (browsers: an app
 *   that asks for `/assets/app.js` or opens `/ws` gets its own).
 *
 * Which hostIds have a hostname: DNS names are case-insensitive and a label holds only letters,
 * digits and hyphens (63 at most), while a hostId part is `[A-Za-z0-9._-]{1,64}`. So a hostId has
 * a hostname when both parts are lowercase letters and digits joined by single hyphens (no
 * hyphen first or last, none doubled: `--` is what splits name from org), `{name}--{org}` is
 * at most 63 characters, and the name is not `xn` (`xn--` begins an internationalised name,
 * which a browser would show as other letters). `laptop--acme.D` is `acme:laptop`; `Laptop--Acme.D` too (a browser
 * lowercases it). Every other label under the domain, and each of `reservedLabels`, is answered
 * 400 `bad_hostname`.
 */
export interface HostRoute {
  readonly hostId: HostId
  /** How the request named its host. */
  readonly via: "path" | "hostname"
  /** Path for the host's local service, normalised (`normalisePath`): starts with one `/`, no dot segments. */
  readonly path: string
  /** Query string without the leading `?` and without a `token` parameter used for auth; "" when none. */
  readonly query: string
  /** The token from `?token=`, when the client authenticated that way. */
  readonly queryToken: string | undefined
  /**
   * The query as sent. On a host's hostname, a request admitted by its session cookie did not
   * use `?token=` for auth: there a `token` parameter is the app's (Vite's HMR socket has one).
   */
  readonly fullQuery: string
}

/** Which site a request's hostname is: the relay's own, a host's, or a name under the domain that is neither. */
export type Site =
  /** The apex, or any name outside the public domain (an address, `<app>.fly.dev`): the relay's own routes and `/hosts/...`. */
  | { readonly _tag: "Relay" }
  /** `{name}--{org}.PUBLIC_DOMAIN`: every path goes to this host. */
  | { readonly _tag: "Host"; readonly hostId: HostId }
  /** A reserved or malformed name under the domain: 400. */
  | { readonly _tag: "NotAHost"; readonly error: BadHostname }

/**
 * Labels right under the public domain that never name a host, answered 400 with their own
 * message (they are not `{name}--{org}` either, so they could never be one): names an operator
 * may point elsewhere in DNS, or that a person might mistake for the relay's own site.
 */
export const reservedLabels: ReadonlyArray<string> = ["www", "api", "admin", "app", "relay", "status", "mail", "dashboard", "login", "auth"]

const relay: Site = { _tag: "Relay" }
const hostPart = "[a-z0-9]+(?:-[a-z0-9]+)*"
const hostLabel = new RegExp(`^(${hostPart})--(${hostPart})$`)
const hostPartOnly = new RegExp(`^${hostPart}$`)

/** A `Host` value without its port and trailing dot, lowercased; `undefined` for an IP literal in brackets. */
const bareHostname = (host: string): string | undefined => {
  if (host.startsWith("[")) return undefined
  const colon = host.lastIndexOf(":")
  return (colon === -1 ? host : host.slice(0, colon)).replace(/\.$/, "").toLowerCase()
}

/** The site a request's hostname (the `Host` the client used) names, for a relay with `publicDomain` (lowercase). */
export const siteOf = (host: string | undefined, publicDomain: string | undefined): Site => {
  if (publicDomain === undefined || host === undefined) return relay
  const hostname = bareHostname(host)
  if (hostname === undefined || !hostname.endsWith(`.${publicDomain}`)) return relay
  const label = hostname.slice(0, -(publicDomain.length + 1))
  const bad = (reserved: boolean): Site => ({
    _tag: "NotAHost",
    error: new BadHostname({ hostname: LogLimits.clip(hostname), domain: publicDomain, reserved })
  })
  if (reservedLabels.includes(label)) return bad(true)
  const match = label.length <= 63 && !label.startsWith("xn--") ? hostLabel.exec(label) : null
  if (match === null) return bad(false)
  const hostId = decodeHostId(`${match[2]}:${match[1]}`)
  return Either.isRight(hostId) ? { _tag: "Host", hostId: hostId.right } : bad(false)
}

/** A host's hostname under `publicDomain`, or `undefined` when its hostId has none (see `HostRoute`). */
export const hostnameOf = (hostId: HostId, publicDomain: string): string | undefined => {
  const colon = hostId.indexOf(":")
  const org = hostId.slice(0, colon)
  const name = hostId.slice(colon + 1)
  const label = `${name}--${org}`
  return hostPartOnly.test(org) && hostPartOnly.test(name) && name !== "xn" && label.length <= 63 ? `${label}.${publicDomain}` : undefined
}

/**
 * The host route of a request on `site`: on a host's hostname the whole URL is the host's; on
 * the relay's own names, a `/hosts/...` path; `undefined` when it is neither (one of the relay's
 * own routes).
 */
export const routeOf = (site: Site, url: string): Either.Either<HostRoute, BadHostId | BadHostname> | undefined => {
  switch (site._tag) {
    case "Relay":
      return parseHostRoute(url)
    case "NotAHost":
      return Either.left(site.error)
    case "Host": {
      const q = url.indexOf("?")
      const fullQuery = q === -1 ? "" : url.slice(q + 1)
      const { query, token } = takeToken(fullQuery)
      return Either.right({ hostId: site.hostId, via: "hostname", path: normalisePath(q === -1 ? url : url.slice(0, q)), query, queryToken: token, fullQuery })
    }
  }
}

const prefix = "/hosts/"

/** Splits a raw request URL (`/hosts/acme:laptop/a/b?x=1`); `undefined` when it is not a host route. */
export const parseHostRoute = (url: string): Either.Either<HostRoute, BadHostId> | undefined => {
  if (!url.startsWith(prefix)) return undefined
  const q = url.indexOf("?")
  const pathname = q === -1 ? url : url.slice(0, q)
  const rawQuery = q === -1 ? "" : url.slice(q + 1)
  const slash = pathname.indexOf("/", prefix.length)
  const rawHostId = slash === -1 ? pathname.slice(prefix.length) : pathname.slice(prefix.length, slash)
  const path = slash === -1 ? "/" : normalisePath(pathname.slice(slash))
  let decoded: string
  try {
    decoded = decodeURIComponent(rawHostId)
  } catch {
    return Either.left(new BadHostId({ input: rawHostId }))
  }
  const { query, token } = takeToken(rawQuery)
  return Either.map(
    Either.mapLeft(decodeHostId(decoded), () => new BadHostId({ input: decoded })),
    (hostId) => ({ hostId, via: "path", path, query, queryToken: token, fullQuery: rawQuery })
  )
}

const dot = /^(?:\.|%2e)$/i
const dotDot = /^(?:\.|%2e){2}$/i

/**
 * The path the host gets, resolved the way a URL parser would before anything acts on it, so
 * it never climbs above `/` (nor above the path prefix of the host agent's target URL):
 * - `.` and `..` segments are resolved, in their percent-encoded forms too (`%2e`, `%2E`,
 *   `.%2e`...); `..` at the root stays at the root;
 * - a backslash is a `/` (WHATWG URL parsers, so most targets, read it that way);
 * - runs of `/` are one `/` (a path starting `//` reads as a host name to URL parsers);
 * - a trailing `/` is kept, and one is added where a last `.` or `..` segment was;
 * - everything else is kept byte for byte, percent-encodings included: `%2F` is part of a
 *   segment, not a separator (APIs use it inside ids), and is not decoded.
 */
export const normalisePath = (raw: string): string => {
  const segments = raw.replace(/\\/g, "/").split("/")
  const out: Array<string> = []
  let trailing = false
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!
    trailing = true
    if (segment === "" || dot.test(segment)) continue
    if (dotDot.test(segment)) {
      out.pop()
      continue
    }
    out.push(segment)
    trailing = false
  }
  return out.length === 0 ? "/" : `/${out.join("/")}${trailing ? "/" : ""}`
}

/** Removes the `token` parameter from a raw query string, keeping every other byte as sent. */
export const takeToken = (rawQuery: string): { readonly query: string; readonly token: string | undefined } => {
  if (rawQuery === "") return { query: "", token: undefined }
  let token: string | undefined
  const kept: Array<string> = []
  for (const part of rawQuery.split("&")) {
    if (part.startsWith("token=")) {
      try {
        token = decodeURIComponent(part.slice("token=".length).replace(/\+/g, " "))
      } catch {
        token = part.slice("token=".length)
      }
    } else {
      kept.push(part)
    }
  }
  return { query: kept.join("&"), token }
}

/** The bearer token of a request: `Authorization: Bearer ...`, else the query's `token`. */
export const bearerToken = (authorization: string | undefined, queryToken: string | undefined): string | undefined => {
  if (authorization !== undefined) {
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim())
    if (match) return match[1]
  }
  return queryToken
}
