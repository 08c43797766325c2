/**
 * The headers a request or response carries across the relay: hop-by-hop ones never cross
 * (`HopByHop` in the protocol package), the relay's own credentials stay here, and the original
 * request is described to the host with `x-forwarded-*`.
 */
import { HopByHop, type Headers } from "@effect-relay/protocol"
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http"

type HeaderRecord = Record<string, string | Array<string>>

const forHost = new Set(["host", "authorization"])

/**
 * A client request's headers as the host gets them: without hop-by-hop ones, without `host` and
 * `authorization` (the relay's credentials are not the host's business) nor any name in `drop`,
 * and with `x-forwarded-*` describing the original request.
 */
export const requestHeadersForHost = (
  headers: IncomingHttpHeaders,
  remoteAddress: string | undefined,
  options: { readonly drop?: ReadonlyArray<string> } = {}
): HeaderRecord => {
  const drop = options.drop === undefined ? forHost : new Set([...forHost, ...options.drop])
  const out = HopByHop.endToEnd(headers as HeaderRecord, drop)
  if (remoteAddress !== undefined) {
    const prior = headers["x-forwarded-for"]
    out["x-forwarded-for"] = prior ? `${Array.isArray(prior) ? prior.join(", ") : prior}, ${remoteAddress}` : remoteAddress
  }
  if (headers["x-forwarded-proto"] === undefined) out["x-forwarded-proto"] = "http"
  if (headers["x-forwarded-host"] === undefined && headers.host !== undefined) out["x-forwarded-host"] = headers.host
  return out
}

const lengthSet = new Set(["content-length"])

/** A host's response headers as the client gets them: hop-by-hop ones and the length removed (the relay sets its own). */
export const responseHeadersForClient = (headers: Headers): OutgoingHttpHeaders => {
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(HopByHop.endToEnd(headers, lengthSet))) {
    out[name] = typeof value === "string" ? value : [...value]
  }
  return out
}

/** A request's headers as one relay forwards them to another: only hop-by-hop ones dropped. */
export const requestHeadersForPeer = (headers: IncomingHttpHeaders): HeaderRecord => HopByHop.endToEnd(headers as HeaderRecord)
