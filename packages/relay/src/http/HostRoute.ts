import { decodeHostId, type HostId } from "@effect-relay/protocol"
import { Either } from "effect"
import { BadHostId } from "./HttpErrors.js"

/**
 * How a client request names a host. Today: the path prefix
 * `/hosts/:hostId/...`; a host-header scheme would be added here, and
 * nowhere else.
 */
export interface HostRoute {
  readonly hostId: HostId
  /** Path for the host's local service, normalised (`normalisePath`): starts with one `/`, no dot segments. */
  readonly path: string
  /** Query string without the leading `?` and without a `token` parameter used for auth; "" when none. */
  readonly query: string
  /** The token from `?token=`, when the client authenticated that way. */
  readonly queryToken: string | undefined
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
    (hostId) => ({ hostId, path, query, queryToken: token })
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
