/**
 * The headers a request or response carries across the relay: hop-by-hop ones never cross
 * (`HopByHop` in the protocol package), the relay's own credentials stay here, and the original
 * request is described to the host by the relay itself.
 *
 * Forwarding headers: a client's own `X-Forwarded-For` / `-Proto` / `-Host` and `Forwarded` are
 * never passed on, and headers that name a client address or scheme some frameworks believe
 * (`X-Real-IP`, `X-Forwarded-Ssl`...) are dropped. The relay writes the four from the `Origin` it
 * establishes: the TCP peer, or what a trusted proxy in front says (`config/TrustProxy.ts`). A
 * request from a peer relay (loop guard and secret verified) keeps the four the first relay wrote.
 */
import { HopByHop, type Headers } from "@effect-relay/protocol"
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http"
import { plainAddress, type TrustProxy } from "../config/TrustProxy.js"
import { withoutSessionCookie } from "./Cookies.js"

type HeaderRecord = Record<string, string | Array<string>>

// --- what the relay knows of the original request ------------------------------------------

/** The original request as the relay establishes it. */
export interface Origin {
  /** The client's address; `undefined` when the socket is already gone. */
  readonly for: string | undefined
  readonly proto: "http" | "https"
  /** The `Host` the client used; `undefined` when it sent none. */
  readonly host: string | undefined
}

const lastOf = (value: string | ReadonlyArray<string> | undefined): string | undefined => {
  if (value === undefined) return undefined
  const list = (typeof value === "string" ? value : value.join(",")).split(",").map((s) => s.trim()).filter((s) => s !== "")
  return list.at(-1)
}

const protoOf = (value: string | ReadonlyArray<string> | undefined): "http" | "https" | undefined => {
  const last = lastOf(value)?.toLowerCase()
  return last === "http" || last === "https" ? last : undefined
}

const single = (value: string | ReadonlyArray<string> | undefined): string | undefined =>
  typeof value === "string" ? value : undefined

/**
 * Who sent the request and how, per the trust setting. The relay's own listener is plain HTTP:
 * without a trusted proxy the scheme is `http`.
 *
 * - `None`: the TCP peer.
 * - `Fly`: `Fly-Client-IP` and the last value of `X-Forwarded-Proto`, both written by Fly's proxy;
 *   a request without a valid `Fly-Client-IP` did not come through it and is read as `None`.
 * - `Proxies`: the chain is `X-Forwarded-For`'s addresses then the TCP peer; walking it from the
 *   right, the first address that is not a trusted proxy is the client (when every one is, the
 *   leftmost; an entry that is not an address stops the walk at the trusted one to its right).
 *   When the TCP peer is trusted, the last value of its `X-Forwarded-Proto` and
 *   `X-Forwarded-Host` is kept.
 */
export const originOf = (headers: IncomingHttpHeaders, remoteAddress: string | undefined, trust: TrustProxy): Origin => {
  const peer = remoteAddress === undefined ? undefined : plainAddress(remoteAddress)
  const direct: Origin = { for: peer, proto: "http", host: single(headers.host) }
  switch (trust._tag) {
    case "None":
      return direct
    case "Fly": {
      const client = plainAddress(single(headers["fly-client-ip"]) ?? "")
      if (client === undefined) return direct
      return { ...direct, for: client, proto: protoOf(headers["x-forwarded-proto"]) ?? "http" }
    }
    case "Proxies": {
      if (peer === undefined || !trust.trusts(peer)) return direct
      const chain = (headers["x-forwarded-for"] ?? "").toString().split(",").map((s) => s.trim()).filter((s) => s !== "")
      let client = peer
      for (let i = chain.length - 1; i >= 0; i--) {
        const address = plainAddress(chain[i]!)
        if (address === undefined) break
        client = address
        if (!trust.trusts(address)) break
      }
      return {
        for: client,
        proto: protoOf(headers["x-forwarded-proto"]) ?? "http",
        host: lastOf(headers["x-forwarded-host"]) ?? direct.host
      }
    }
  }
}

// --- the headers that describe it ------------------------------------------------------------

/** The four headers the relay writes (and, from anyone but a peer relay, replaces). */
const forwarding = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"] as const

/**
 * Headers that claim a client address, scheme, port or path prefix, which frameworks read
 * (Rack: `X-Forwarded-Ssl`, `X-Forwarded-Scheme`; nginx: `X-Real-IP`; Spring: `X-Forwarded-Prefix`...).
 * The relay does not vouch for them: they never reach the host. The client's address and scheme
 * are in `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded`.
 */
const spoofable = [
  "x-real-ip",
  "x-client-ip",
  "true-client-ip",
  "cf-connecting-ip",
  "fly-client-ip",
  "x-cluster-client-ip",
  "x-forwarded-ssl",
  "x-forwarded-scheme",
  "x-forwarded-port",
  "x-forwarded-prefix",
  "front-end-https"
] as const

const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const quoted = (value: string) => `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`

/** An RFC 7239 `Forwarded` element: `for=192.0.2.1;host=example.com;proto=https`, IPv6 as `for="[2001:db8::1]"`. */
export const forwardedElement = (origin: Origin): string => {
  const pairs: Array<string> = []
  if (origin.for !== undefined) pairs.push(`for=${origin.for.includes(":") ? quoted(`[${origin.for}]`) : origin.for}`)
  if (origin.host !== undefined) pairs.push(`host=${token.test(origin.host) ? origin.host : quoted(origin.host)}`)
  pairs.push(`proto=${origin.proto}`)
  return pairs.join(";")
}

/** The forwarding headers for an origin. `X-Forwarded-For` is the client's address alone. */
export const forwardingHeaders = (origin: Origin): Record<string, string> => ({
  ...(origin.for === undefined ? {} : { "x-forwarded-for": origin.for }),
  "x-forwarded-proto": origin.proto,
  ...(origin.host === undefined ? {} : { "x-forwarded-host": origin.host }),
  forwarded: forwardedElement(origin)
})

/** The forwarding headers a verified peer relay sent, as it sent them. */
const fromPeerRelay = (headers: IncomingHttpHeaders): HeaderRecord => {
  const out: HeaderRecord = {}
  for (const name of forwarding) {
    const value = headers[name]
    if (value !== undefined) out[name] = value
  }
  return out
}

export interface ForwardOptions {
  /** More header names (lowercase) to leave out. */
  readonly drop?: ReadonlyArray<string>
  /**
   * The client proved itself with the relay's session cookie, not with `Authorization`: that
   * header is then the app's own (a bearer token of the app, Basic auth) and is passed on.
   */
  readonly keepAuthorization?: boolean
  /** Who may say who the client is (default: nobody). */
  readonly trust?: TrustProxy
  /**
   * The request came from a peer relay whose secret was verified: its forwarding headers are
   * the first relay's, kept as they are. Never set it for a request that was not verified.
   */
  readonly fromPeer?: boolean
}

const none: TrustProxy = { _tag: "None" }
const forHost = ["host", ...forwarding, ...spoofable]

/**
 * A client request's headers as the host gets them: without hop-by-hop ones, without `host`,
 * `authorization` (unless `keepAuthorization`) and the relay's session cookie (the relay's
 * credentials are not the host's business; every other cookie is kept as sent) nor any name in
 * `drop`, without the client's own forwarding headers, and with the relay's `X-Forwarded-*` and
 * `Forwarded` describing the original request.
 */
export const requestHeadersForHost = (
  headers: IncomingHttpHeaders,
  remoteAddress: string | undefined,
  options: ForwardOptions = {}
): HeaderRecord => {
  const dropped = [...forHost, ...(options.keepAuthorization === true ? [] : ["authorization"]), ...(options.drop ?? [])]
  const out = HopByHop.endToEnd(headers as HeaderRecord, new Set(dropped))
  const cookie = withoutSessionCookie(headers.cookie)
  if (cookie === undefined) delete out.cookie
  else if (out.cookie !== undefined) out.cookie = cookie
  const described = options.fromPeer === true
    ? fromPeerRelay(headers)
    : forwardingHeaders(originOf(headers, remoteAddress, options.trust ?? none))
  return Object.assign(out, described)
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

const forPeer = new Set<string>([...forwarding, ...spoofable])

/**
 * A request's headers as one relay forwards them to another: hop-by-hop ones and the client's
 * forwarding headers dropped, and this relay's own `X-Forwarded-*` and `Forwarded` added, which
 * the peer passes on to the host unchanged. `Host` is the one the client used (as this relay
 * established it): the peer routes a host's hostname by it, as this relay did. Credentials
 * (`Authorization`, the session cookie) go along: the peer checks them again.
 */
export const requestHeadersForPeer = (
  headers: IncomingHttpHeaders,
  remoteAddress: string | undefined,
  trust: TrustProxy = none
): HeaderRecord => {
  const origin = originOf(headers, remoteAddress, trust)
  const out = Object.assign(HopByHop.endToEnd(headers as HeaderRecord, forPeer), forwardingHeaders(origin))
  if (origin.host !== undefined) out.host = origin.host
  return out
}
