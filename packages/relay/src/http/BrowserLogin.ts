/**
 * A person's browser on a host's hostname (`{name}--{org}.PUBLIC_DOMAIN`):
 * - `GET ...?token=T` from a browser without a session for the host logs in (with one, the
 *   `token` parameter is the app's and goes to the host): the token must cover the host's org;
 *   the answer is a redirect to the same address without the token, with the relay's session
 *   cookie (`Cookies.ts`, signed by `SessionCookies`), which expires with the token at the latest. Only a GET logs in (with
 *   `SameSite=Lax`, no other site can make a browser send a request that changes anything with
 *   the cookie); on other methods `?token=` authorizes that one request, as on the path form.
 * - `/_logout` (any method) clears the cookie.
 * Neither reaches the host, nor needs it to be connected.
 */
import { Context, Effect, Layer } from "effect"
import type * as http from "node:http"
import { Auth } from "../auth/Auth.js"
import { SessionCookies } from "../auth/SessionCookie.js"
import { RelayConfig } from "../config/RelayConfig.js"
import { clearSessionCookies, setSessionCookie } from "./Cookies.js"
import { originOf } from "./ForwardHeaders.js"
import type { HostRoute } from "./HostRoute.js"
import { signedOutPage } from "./Pages.js"
import { writeError, writeHtml } from "./Responses.js"

/** The path that signs a browser out, on a host's hostname (the host's own `/_logout` is out of reach there). */
export const logoutPath = "/_logout"

/** Whether a request on a host's hostname is a login: a GET carrying `?token=`. */
export const isLogin = (method: string | undefined, route: HostRoute): boolean =>
  route.via === "hostname" && method === "GET" && route.queryToken !== undefined

export class BrowserLogin extends Context.Tag("effect-relay/BrowserLogin")<BrowserLogin, {
  readonly login: (req: http.IncomingMessage, res: http.ServerResponse, route: HostRoute) => Effect.Effect<void>
  readonly logout: (req: http.IncomingMessage, res: http.ServerResponse) => Effect.Effect<void>
}>() {
  static layer = Layer.effect(
    BrowserLogin,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const auth = yield* Auth
      const sessions = yield* SessionCookies

      // The scheme the client used, as the relay establishes it (`TRUST_PROXY`: Fly's proxy says https).
      const originFor = (req: http.IncomingMessage) => originOf(req.headers, req.socket.remoteAddress, config.trustProxy)

      const login = (req: http.IncomingMessage, res: http.ServerResponse, route: HostRoute) =>
        Effect.gen(function*() {
          const grant = yield* auth.authorize(route.queryToken, route.hostId)
          const cookie = sessions.seal({ hostId: route.hostId, expiresAt: grant.expiresAt })
          const secure = originFor(req).proto === "https"
          // The path is the normalised one (a single leading `/`): the redirect cannot leave this host.
          res.writeHead(303, {
            location: route.query === "" ? route.path : `${route.path}?${route.query}`,
            "set-cookie": setSessionCookie(cookie, grant.expiresAt - Math.floor(Date.now() / 1000), secure),
            "cache-control": "no-store",
            "referrer-policy": "no-referrer",
            "content-length": 0
          })
          res.end()
        }).pipe(Effect.catchAll((e) => writeError(res, e)))

      const logout = (req: http.IncomingMessage, res: http.ServerResponse) =>
        writeHtml(res, 200, signedOutPage(originFor(req).host), false, {
          "set-cookie": clearSessionCookies
        })

      return BrowserLogin.of({ login, logout })
    })
  )
}
