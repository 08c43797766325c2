import type { Headers } from "@effect-relay/protocol"
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http"

/** Hop-by-hop headers (RFC 9110 7.6.1) never cross a proxy. */
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade"
])

/** Plus the headers named in `Connection`, so a client cannot smuggle its own hop-by-hop list. */
const connectionListed = (headers: IncomingHttpHeaders | Headers): Set<string> => {
  const value = headers["connection"]
  const list = typeof value === "string" ? value : value === undefined ? "" : value.join(",")
  return new Set(list.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0))
}

/**
 * The headers a client request carries to the host: without hop-by-hop ones,
 * without `host` and `authorization` (the relay's credentials are not the
 * host's business), and with `x-forwarded-*` describing the original request.
 */
export const requestHeadersForHost = (
  headers: IncomingHttpHeaders,
  remoteAddress: string | undefined,
  options: { readonly drop?: ReadonlyArray<string> } = {}
): Record<string, string | Array<string>> => {
  const listed = connectionListed(headers)
  const out: Record<string, string | Array<string>> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    if (hopByHop.has(name) || listed.has(name) || name === "host" || name === "authorization") continue
    if (options.drop?.includes(name)) continue
    out[name] = value
  }
  if (remoteAddress !== undefined) {
    const prior = headers["x-forwarded-for"]
    out["x-forwarded-for"] = prior ? `${Array.isArray(prior) ? prior.join(", ") : prior}, ${remoteAddress}` : remoteAddress
  }
  if (headers["x-forwarded-proto"] === undefined) out["x-forwarded-proto"] = "http"
  if (headers["x-forwarded-host"] === undefined && headers.host !== undefined) out["x-forwarded-host"] = headers.host
  return out
}

/** The headers of a host's response as the client gets them: hop-by-hop and length removed (the relay sets its own). */
export const responseHeadersForClient = (headers: Headers): OutgoingHttpHeaders => {
  const listed = connectionListed(headers)
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase()
    if (hopByHop.has(key) || listed.has(key) || key === "content-length") continue
    out[key] = typeof value === "string" ? value : [...value]
  }
  return out
}

/** A request's headers as one relay forwards them to another: only hop-by-hop ones dropped. */
export const requestHeadersForPeer = (headers: IncomingHttpHeaders): Record<string, string | Array<string>> => {
  const listed = connectionListed(headers)
  const out: Record<string, string | Array<string>> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || hopByHop.has(name) || listed.has(name)) continue
    out[name] = value
  }
  return out
}
