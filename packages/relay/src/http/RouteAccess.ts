/**
 * Who may reach a host: a client request to `/hosts/:hostId/...` names its host (`HostRoute`),
 * may come from another relay (then it must carry the peer secret), and must carry a token
 * whose orgs cover the host's. HTTP requests and WebSocket upgrades are checked alike.
 */
import type { HostId } from "@effect-relay/protocol"
import { type Context, Effect } from "effect"
import type * as http from "node:http"
import type { Auth } from "../auth/Auth.js"
import type { PeerProxy } from "../routing/PeerProxy.js"
import { bearerToken, type HostRoute, parseHostRoute } from "./HostRoute.js"

export interface Admitted {
  readonly route: HostRoute
  readonly hostId: HostId
  /** Forwarded here by another relay (never forwarded again). */
  readonly fromPeer: boolean
}

/** Checks a `/hosts/...` request: its route, the peer secret when it comes from a relay, its token. */
export const makeAdmit = (auth: Context.Tag.Service<typeof Auth>, peers: Context.Tag.Service<typeof PeerProxy>) => (req: http.IncomingMessage, url: string) =>
  Effect.gen(function*() {
    const route = yield* parseHostRoute(url)!
    const fromPeer = peers.isFromPeer(req.headers)
    if (fromPeer) yield* peers.verify(req.headers)
    yield* auth.authorize(bearerToken(req.headers.authorization, route.queryToken), route.hostId)
    return { route, hostId: route.hostId, fromPeer } satisfies Admitted
  })
