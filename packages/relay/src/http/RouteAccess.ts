/**
 * Who may reach a host. A client request names its host (`HostRoute`: `/hosts/:hostId/...`, or a
 * host's hostname under `PUBLIC_DOMAIN`), may come from another relay (then it must carry the
 * peer secret), and must prove it may reach the host's org:
 * - a token (`Authorization: Bearer`, or `?token=`) whose orgs cover the host's; or
 * - on a host's hostname, the relay's session cookie for that host (set by `BrowserLogin`), used
 *   only by the host's own pages and by links to them (`sameSiteUse`).
 * HTTP requests and WebSocket upgrades are checked alike.
 */
import { type HostId, orgOf } from "@effect-relay/protocol"
import { Context, Effect, Either, Layer, Option } from "effect"
import type * as http from "node:http"
import { Auth } from "../auth/Auth.js"
import { type Forbidden, Unauthorized } from "../auth/AuthErrors.js"
import { SessionCookies } from "../auth/SessionCookie.js"
import { RelayConfig } from "../config/RelayConfig.js"
import { PeerProxy } from "../routing/PeerProxy.js"
import type { PeerForbidden } from "../routing/RoutingErrors.js"
import { sessionCookieValues } from "./Cookies.js"
import { originOf } from "./ForwardHeaders.js"
import { bearerToken, type HostRoute, routeOf, type Site, siteOf } from "./HostRoute.js"
import { type BadHostId, type BadHostname, CrossSiteSession } from "./HttpErrors.js"

export interface Admitted {
  readonly route: HostRoute
  readonly hostId: HostId
  /** Forwarded here by another relay (never forwarded again). */
  readonly fromPeer: boolean
  /**
   * How the client proved itself. With the session cookie, `Authorization` was not the relay's
   * credential: it is the app's own, and is passed on to the host.
   */
  readonly credential: "token" | "session"
}

export type AdmitError = BadHostId | BadHostname | PeerForbidden | Unauthorized | Forbidden | CrossSiteSession

export class RouteAccess extends Context.Tag("effect-relay/RouteAccess")<RouteAccess, {
  /** The site a request's hostname names: the `Host` the client used, as `TRUST_PROXY` establishes it. */
  readonly site: (req: http.IncomingMessage) => Site
  /**
   * Checks a request to a host (`site` says it is one): its route, the peer secret when it comes
   * from a relay, its credential. Admitted by a session, the route's query keeps its `token`.
   */
  readonly admit: (req: http.IncomingMessage, url: string) => Effect.Effect<Admitted, AdmitError>
  /** Whether a request on a host's hostname carries a session for that host that it may use (then `?token=` is not a login). */
  readonly hasSession: (req: http.IncomingMessage, route: HostRoute) => boolean
}>() {
  static layer = Layer.effect(
    RouteAccess,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const auth = yield* Auth
      const peers = yield* PeerProxy
      const sessions = yield* SessionCookies
      const domain = Option.getOrUndefined(Option.map(config.publicDomain, (d) => d.toLowerCase()))

      const clientHost = (req: http.IncomingMessage) => originOf(req.headers, req.socket.remoteAddress, config.trustProxy).host
      const relaySite: Site = { _tag: "Relay" }
      // Without a public domain every name is the relay's: no need to work out the client's host.
      const site = (req: http.IncomingMessage) => (domain === undefined ? relaySite : siteOf(clientHost(req), domain))

      const sessionsOf = (req: http.IncomingMessage, route: HostRoute) => sessionCookieValues(req.headers.cookie).map((value) => sessions.open(value, route.hostId))

      const hasSession = (req: http.IncomingMessage, route: HostRoute) =>
        route.via === "hostname" && sessionsOf(req, route).some(Either.isRight) && sameSiteUse(req, clientHost(req))

      /**
       * A session cookie for the route's host, else the token. Several session cookies may come
       * (one set by another host's page with `Domain=`): any valid one counts. A valid session
       * on a request that is not the host's own page's nor a link to it is refused, unless a
       * token proves the request instead.
       */
      const authenticate = (req: http.IncomingMessage, route: HostRoute): Effect.Effect<Admitted["credential"], Unauthorized | Forbidden | CrossSiteSession> => {
        const token = bearerToken(req.headers.authorization, route.queryToken)
        const tokenOnly = Effect.as(auth.authorize(token, route.hostId), "token" as const)
        if (route.via !== "hostname") return tokenOnly
        const opened = sessionsOf(req, route)
        if (opened.length === 0) return tokenOnly
        const valid = opened.some(Either.isRight)
        if (valid && sameSiteUse(req, clientHost(req))) return Effect.succeed("session")
        if (token !== undefined) return tokenOnly
        if (valid) return Effect.fail(new CrossSiteSession())
        const why = Either.getLeft(opened[0]!).pipe(Option.getOrElse(() => "invalid session cookie"))
        return Effect.fail(new Unauthorized({ reason: why, org: orgOf(route.hostId) }))
      }

      const admit = (req: http.IncomingMessage, url: string) =>
        Effect.gen(function*() {
          const route = yield* routeOf(site(req), url)!
          const fromPeer = peers.isFromPeer(req.headers)
          if (fromPeer) yield* peers.verify(req.headers)
          const credential = yield* authenticate(req, route)
          const forHost = credential === "session" ? { ...route, query: route.fullQuery, queryToken: undefined } : route
          return { route: forHost, hostId: route.hostId, fromPeer, credential } satisfies Admitted
        })

      return RouteAccess.of({ site, admit, hasSession })
    })
  )
}

const single = (value: string | ReadonlyArray<string> | undefined): string | undefined => (typeof value === "string" ? value : undefined)

const hostOfOrigin = (origin: string): string | undefined => {
  try {
    return new URL(origin).host.toLowerCase()
  } catch {
    return undefined
  }
}

/**
 * Whether a request may use a session cookie: what `SameSite=Lax` would allow if each host's
 * hostname were a site of its own. Browsers count every name under the public domain as one site
 * (unless the domain is on the Public Suffix List), so `SameSite` alone would let one host's pages
 * send their requests, and open WebSockets, with another host's session.
 * - A WebSocket: its `Origin` is this hostname (browsers always send one; a client without one is no browser).
 * - Else, by Fetch Metadata: from the same origin; typed or bookmarked (`none`); or a top-level
 *   GET or HEAD navigation (a link from elsewhere), as `Lax` allows.
 * - A browser without Fetch Metadata: a foreign `Origin` only on GET or HEAD.
 */
export const sameSiteUse = (req: http.IncomingMessage, host: string | undefined): boolean => {
  const origin = single(req.headers.origin)
  const sameOrigin = origin !== undefined && host !== undefined && hostOfOrigin(origin) === host.toLowerCase()
  if (single(req.headers.upgrade)?.toLowerCase() === "websocket") return origin === undefined || sameOrigin
  const safe = req.method === "GET" || req.method === "HEAD"
  const fetchSite = single(req.headers["sec-fetch-site"])
  if (fetchSite === undefined) return origin === undefined || sameOrigin || safe
  if (fetchSite === "same-origin" || fetchSite === "none") return true
  const dest = single(req.headers["sec-fetch-dest"])
  return safe && single(req.headers["sec-fetch-mode"]) === "navigate" && (dest === undefined || dest === "document")
}
