import { type Answer, openSocket, redisPrefix, requestWithHost, startTarget, testDomain, testSecret, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { sealSession, sessionKey } from "../src/auth/SessionCookie.js"
import { type RelaySettings } from "../src/config/RelayConfig.js"
import * as TrustProxy from "../src/config/TrustProxy.js"
import { agent, served } from "./processSupport.js"
import { startRedisRelay, startRelay } from "./support.js"

/**
 * A host at `{name}--{org}.relay.test`: every path and WebSocket is the host's, a GET with
 * `?token=` logs a browser in with the relay's session cookie, and the cookie's rules. Real relay,
 * real host agent, a target that echoes what it received; requests go to 127.0.0.1 with the
 * `Host` a browser would send (the browser itself: Browser.test.ts).
 */

const publicDomain = Option.some(testDomain)
const web = "acme:web"

type Echo = { readonly url: string; readonly method: string; readonly headers: Record<string, string | undefined> }

/** A relay with the public domain and the host acme:web on a target that echoes. */
const setup = (overrides: Partial<RelaySettings> = {}) =>
  Effect.gen(function*() {
    const relay = yield* startRelay({ publicDomain, ...overrides })
    const target = yield* startTarget
    const t = yield* token({ org: "acme" })
    yield* agent(relay, web, target.url, t)
    const at = (label: string) => `${label}.${testDomain}:${relay.port}`
    const send: Send = (label, path, init = {}) => requestWithHost(relay.port, at(label), path, init)
    return { relay, target, token: t, at, send }
  })

/** The session cookie (`name=value`) a login's `Set-Cookie` carries. */
const cookieOf = (setCookie: string | ReadonlyArray<string> | undefined): string => {
  const first = Array.isArray(setCookie) ? setCookie[0] : setCookie
  if (typeof first !== "string") throw new Error("no Set-Cookie")
  return first.split(";")[0]!
}

type Send = (label: string, path: string, init?: Parameters<typeof requestWithHost>[3]) => Effect.Effect<Answer>

/** Logs in on `{label}.relay.test` with `t`; the session cookie as `name=value`. */
const login = (send: Send, label: string, t: string) =>
  Effect.gen(function*() {
    const answer = yield* send(label, `/?token=${t}`)
    expect(answer.status, answer.body).toBe(303)
    return cookieOf(answer.headers["set-cookie"])
  })

const json = <A>(body: string) => JSON.parse(body) as A

describe("a host's hostname", () => {
  it.scopedLive("login: a GET with ?token= redirects to the same address without it and sets a host-only, HttpOnly, Lax session cookie; the host is not asked", () =>
    Effect.gen(function*() {
      const { send, target, token: t } = yield* setup()
      const before = Math.floor(Date.now() / 1000)
      const answer = yield* send("web--acme", `/app/../page?x=1&token=${t}&y=%2F`)
      expect(answer.status).toBe(303)
      expect(answer.headers.location).toBe("/page?x=1&y=%2F")
      expect(answer.headers["cache-control"]).toBe("no-store")
      const setCookie = answer.headers["set-cookie"]!
      expect(setCookie).toHaveLength(1)
      const match = /^effect-relay-session=v1\.[\w-]+\.[\w-]+; Path=\/; Max-Age=(\d+); HttpOnly; SameSite=Lax$/.exec(setCookie[0]!)
      expect(match, setCookie[0]).not.toBeNull()
      // No longer than the token's remaining hour; no Domain (host-only), no Secure over plain http.
      const maxAge = Number(match![1])
      expect(maxAge).toBeLessThanOrEqual(3600)
      expect(maxAge).toBeGreaterThan(3600 - (Math.floor(Date.now() / 1000) - before) - 5)
      // The JWT is nowhere in what the browser keeps.
      expect(JSON.stringify(answer.headers)).not.toContain(t)
      expect(target.seen).toHaveLength(0)
    }))

  it.scopedLive("with the cookie every path and WebSocket is the host's; the relay's cookie is taken out, the app's cookies and Authorization pass both ways; X-Forwarded-Host is the hostname used", () =>
    Effect.gen(function*() {
      const { at, relay, send, target, token: t } = yield* setup()
      const session = yield* login(send, "web--acme", t)
      const headers = { cookie: `a=1; ${session}; b=2`, authorization: "Bearer the-app-s-own-token" }
      const answer = yield* send("web--acme", "/echo/x?q=1", { headers })
      expect(answer.status, answer.body).toBe(200)
      const echo = json<Echo>(answer.body)
      expect(echo.url).toBe("/echo/x?q=1")
      expect(echo.headers.cookie).toBe("a=1; b=2")
      expect(echo.headers.authorization).toBe("Bearer the-app-s-own-token")
      expect(echo.headers.host).toBe(`127.0.0.1:${target.port}`)
      expect(echo.headers["x-forwarded-host"]).toBe(at("web--acme"))
      expect(echo.headers["x-forwarded-proto"]).toBe("http")
      expect(echo.headers.forwarded).toBe(`for=127.0.0.1;host="${at("web--acme")}";proto=http`)

      // The relay's own paths and the path form are the host's paths here.
      for (const path of ["/health", "/metrics", "/tunnel", "/hosts/acme:web/echo", "/_whoowns"]) {
        const other = yield* send("web--acme", path, { headers: { cookie: session } })
        expect(other.status, path).toBe(200)
        expect(json<Echo>(other.body).url, path).toBe(path)
      }
      // With a session, `?token=` is the app's (Vite's HMR socket has one): it goes to the host, and is no login.
      const appToken = yield* send("web--acme", "/echo/app?token=the-app-s-own&x=1", { headers: { cookie: session } })
      expect(appToken.status).toBe(200)
      expect(json<Echo>(appToken.body).url).toBe("/echo/app?token=the-app-s-own&x=1")
      // Without one, it is a login: this token is refused.
      expect((yield* send("web--acme", "/echo/app?token=the-app-s-own")).status).toBe(401)
      // The app's Set-Cookie reaches the browser untouched.
      const cookies = yield* send("web--acme", "/cookies", { headers: { cookie: session } })
      expect(cookies.headers["set-cookie"]).toEqual(["a=1; Path=/", "b=2; Path=/"])

      // A WebSocket on the hostname, from the host's own page.
      const socket = yield* openSocket(`${relay.ws}/greet/ws?z=1`, { host: at("web--acme"), origin: `http://${at("web--acme")}`, cookie: `${session}; c=3` })
      yield* Effect.promise(() => socket.waitFrames(1))
      const greeting = json<{ url: string; headers: Record<string, string> }>(socket.frames[0]!.data as string)
      expect(greeting.url).toBe("/greet/ws?z=1")
      expect(greeting.headers.cookie).toBe("c=3")
      expect(greeting.headers["x-forwarded-host"]).toBe(at("web--acme"))
      const withAppToken = yield* openSocket(`${relay.ws}/greet/hmr?token=vite-s-own`, { host: at("web--acme"), origin: `http://${at("web--acme")}`, cookie: session })
      yield* Effect.promise(() => withAppToken.waitFrames(1))
      expect(json<{ url: string }>(withAppToken.frames[0]!.data as string).url).toBe("/greet/hmr?token=vite-s-own")
      socket.ws.send("hello")
      yield* Effect.promise(() => socket.waitFrames(2))
      expect(socket.frames[1]!.data).toBe("hello")

      // Not a single request the target saw carried the relay's cookie.
      for (const seen of target.seen) expect(String(seen.headers.cookie ?? "")).not.toContain("effect-relay-session")
    }))

  it.scopedLive("cookie rules: another host's cookie, an expired one and a tampered one 401; a token for another org 403; JSON for API clients, a page for browsers", () =>
    Effect.gen(function*() {
      const { relay, send, target, token: t } = yield* setup()
      const session = yield* login(send, "web--acme", t)
      const key = sessionKey(Redacted.make(testSecret))
      const now = Math.floor(Date.now() / 1000)
      const value = session.slice(session.indexOf("=") + 1)
      const [v, payload, mac] = value.split(".") as [string, string, string]
      const forged = Buffer.from(JSON.stringify({ h: web, e: now + 10 * 365 * 86_400 })).toString("base64url")
      const cases: Array<[string, string, string, number, RegExp]> = [
        ["another host's cookie", "other--acme", session, 401, /for another host/],
        ["an expired cookie", "web--acme", `effect-relay-session=${sealSession(key, { hostId: web as never, expiresAt: now - 1 })}`, 401, /session expired/],
        ["a longer expiry, same MAC", "web--acme", `effect-relay-session=${v}.${forged}.${mac}`, 401, /invalid session cookie/],
        ["a changed MAC", "web--acme", `effect-relay-session=${v}.${payload}.${mac.slice(0, -1)}${mac.endsWith("A") ? "B" : "A"}`, 401, /invalid session cookie/],
        ["signed with another key", "web--acme", `effect-relay-session=${sealSession(sessionKey(Redacted.make("another-secret-another-secret-xx")), { hostId: web as never, expiresAt: now + 60 })}`, 401, /invalid session cookie/],
        ["the secure name, tampered", "web--acme", `__Host-effect-relay-session=${value}x`, 401, /invalid session cookie/]
      ]
      for (const [what, label, cookie, status, message] of cases) {
        const answer = yield* send(label, "/echo", { headers: { cookie } })
        expect(answer.status, what).toBe(status)
        expect(json<{ error: string; message: string }>(answer.body), what).toEqual({ error: "unauthorized", message: expect.stringMatching(message) })
        const refusedSocket = yield* Effect.flip(openSocket(`${relay.ws}/ws`, { host: `${label}.${testDomain}:${relay.port}`, cookie }))
        expect(refusedSocket, what).toEqual({ status })
      }
      // A valid cookie among forged ones (another host's page may set one with Domain=) still counts.
      const amongForged = yield* send("web--acme", "/echo", { headers: { cookie: `effect-relay-session=forged; ${session}` } })
      expect(amongForged.status).toBe(200)

      const otherOrg = yield* token({ org: "other" })
      const forbidden = yield* send("web--acme", `/?token=${otherOrg}`)
      expect(forbidden.status).toBe(403)
      expect(forbidden.headers["set-cookie"]).toBeUndefined()
      expect(json(forbidden.body)).toEqual({ error: "forbidden", message: "token does not grant access to org acme" })

      // A person's browser gets a page saying what to do.
      const browser = { accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" }
      for (const [path, status] of [["/", 401], [`/?token=${otherOrg}`, 403], ["/?token=garbage", 401]] as const) {
        const page = yield* send("web--acme", path, { headers: browser })
        expect(page.status, path).toBe(status)
        expect(page.headers["content-type"]).toBe("text/html; charset=utf-8")
        expect(page.headers["content-security-policy"]).toContain("default-src 'none'")
        expect(page.body).toContain("This host needs a token")
        expect(page.body).toContain("npx effect-relay token --org acme")
        expect(page.body).toContain(`<form method="get">`)
      }
      // An API client keeps JSON.
      const api = yield* send("web--acme", "/", { headers: { accept: "application/json" } })
      expect(api.headers["content-type"]).toBe("application/json")
      expect(json(api.body)).toEqual({ error: "unauthorized", message: "missing token" })
      expect(target.seen.filter((s) => !s.url.startsWith("/echo"))).toHaveLength(0)
    }))

  it.scopedLive("CSRF: only a GET logs in; a session is used by the host's own pages and links to it, not by other sites' pages (other hosts' hostnames included)", () =>
    Effect.gen(function*() {
      const { at, relay, send, target, token: t } = yield* setup()
      const session = yield* login(send, "web--acme", t)

      // A POST with ?token= is that one request's token (as on the path form): no session, no redirect.
      const post = yield* send("web--acme", `/echo?token=${t}&k=v`, { method: "POST", body: "x" })
      expect(post.status).toBe(200)
      expect(post.headers["set-cookie"]).toBeUndefined()
      expect(json<Echo>(post.body).url).toBe("/echo?k=v")

      const self = `http://${at("web--acme")}`
      const otherTenant = `http://evil--other.${testDomain}:${relay.port}`
      const before = target.seen.length
      const refused: Array<[string, string, Record<string, string>]> = [
        ["a fetch POST from another host's page", "POST", { "sec-fetch-site": "same-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "empty", origin: otherTenant }],
        ["a script include from another site", "GET", { "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "script" }],
        ["a frame of another host's page", "GET", { "sec-fetch-site": "same-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "iframe" }],
        ["a form POST from another site (top level)", "POST", { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" }],
        ["a POST with a foreign Origin, no Fetch Metadata", "POST", { origin: otherTenant }]
      ]
      for (const [what, method, headers] of refused) {
        const answer = yield* send("web--acme", "/echo", { method, headers: { ...headers, cookie: session }, ...(method === "POST" ? { body: "x" } : {}) })
        expect(answer.status, what).toBe(403)
        expect(json(answer.body), what).toMatchObject({ error: "cross_site" })
      }
      expect(target.seen.length).toBe(before)

      const allowed: Array<[string, string, Record<string, string>]> = [
        ["the host's own fetch", "POST", { "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors", origin: self }],
        ["typed in the address bar", "GET", { "sec-fetch-site": "none", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" }],
        ["a link from another site", "GET", { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" }],
        ["no Fetch Metadata, same Origin", "POST", { origin: self }],
        ["no Fetch Metadata, no Origin (not a browser)", "POST", {}]
      ]
      for (const [what, method, headers] of allowed) {
        const answer = yield* send("web--acme", "/echo", { method, headers: { ...headers, cookie: session }, ...(method === "POST" ? { body: "x" } : {}) })
        expect(answer.status, what).toBe(200)
      }

      // A WebSocket with the session: only from the host's own origin (browsers always send Origin).
      const ws = `${relay.ws}/ws`
      expect(yield* Effect.flip(openSocket(ws, { host: at("web--acme"), cookie: session, origin: otherTenant }))).toEqual({ status: 403 })
      expect(yield* Effect.flip(openSocket(ws, { host: at("web--acme"), cookie: session, origin: "null" }))).toEqual({ status: 403 })
      yield* openSocket(ws, { host: at("web--acme"), cookie: session, origin: self })
      // A token proves the request instead, whatever the origin.
      yield* openSocket(`${ws}?token=${t}`, { host: at("web--acme"), cookie: session, origin: otherTenant })
    }))

  it.scopedLive("/_logout clears the cookie and is not the host's; the login and the logout need no host", () =>
    Effect.gen(function*() {
      // A request for a host that is not connected waits HOLD_MS for it: a short one here.
      const { send, target, token: t } = yield* setup({ holdMs: 100 })
      const offline = yield* login(send, "gone--acme", t)
      expect(offline).toMatch(/^effect-relay-session=/)
      const answer = yield* send("web--acme", "/_logout", { headers: { accept: "text/html" } })
      expect(answer.status).toBe(200)
      expect(answer.body).toContain("Signed out")
      expect(answer.headers["set-cookie"]).toEqual([
        "effect-relay-session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
        "__Host-effect-relay-session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
      ])
      expect(target.seen).toHaveLength(0)
      // The host offline, to a person: a page, with the relay's status.
      const page = yield* send("gone--acme", "/", { headers: { accept: "text/html", cookie: offline } })
      expect(page.status).toBe(503)
      expect(page.body).toContain("host acme:gone is not connected")
    }))

  it.scopedLive("over https through Fly's proxy (TRUST_PROXY=fly) the cookie is Secure and __Host-; a client's own X-Forwarded-Proto is not believed", () =>
    Effect.gen(function*() {
      const { send, token: t } = yield* setup({ trustProxy: TrustProxy.fly })
      const viaFly = yield* send("web--acme", `/?token=${t}`, { headers: { "fly-client-ip": "203.0.113.9", "x-forwarded-proto": "https" } })
      expect(viaFly.headers["set-cookie"]![0]).toMatch(/^__Host-effect-relay-session=v1\.[\w.-]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/)
      const session = cookieOf(viaFly.headers["set-cookie"])
      const echo = yield* send("web--acme", "/echo", { headers: { cookie: `${session}; app=1`, "fly-client-ip": "203.0.113.9", "x-forwarded-proto": "https" } })
      expect(json<Echo>(echo.body).headers).toMatchObject({ cookie: "app=1", "x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9" })
      const direct = yield* send("web--acme", `/?token=${t}`, { headers: { "x-forwarded-proto": "https" } })
      expect(direct.headers["set-cookie"]![0]).toMatch(/^effect-relay-session=[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/)
    }))

  it.scopedLive("reserved and malformed names under the domain 400; the apex and other names keep the relay's routes and the path form with bearer tokens", () =>
    Effect.gen(function*() {
      const { at, relay, send, token: t } = yield* setup()
      const names: Array<[string, RegExp]> = [
        ["www", /is reserved/],
        ["api", /is reserved/],
        ["laptop", /not a host's hostname/],
        ["web-acme", /not a host's hostname/],
        ["a_b--acme", /not a host's hostname/],
        ["-web--acme", /not a host's hostname/],
        ["web---acme", /not a host's hostname/],
        ["web--acme-", /not a host's hostname/],
        ["x.web--acme", /not a host's hostname/],
        [`${"a".repeat(40)}--${"b".repeat(22)}`, /not a host's hostname/]
      ]
      for (const [label, message] of names) {
        const answer = yield* send(label, `/health?token=${t}`, { headers: { authorization: `Bearer ${t}` } })
        expect(answer.status, label).toBe(400)
        expect(json(answer.body), label).toEqual({ error: "bad_hostname", message: expect.stringMatching(message) })
        expect(yield* Effect.flip(openSocket(`${relay.ws}/ws`, { host: at(label), authorization: `Bearer ${t}` })), label).toEqual({ status: 400 })
      }
      // A browser reads it as a page.
      const page = yield* send("www", "/", { headers: { accept: "text/html" } })
      expect(page.status).toBe(400)
      expect(page.body).toContain("is reserved")

      // DNS names are case-insensitive: WEB--ACME is acme:web. A bearer token works on a hostname too.
      const upper = yield* send("WEB--ACME", "/echo", { headers: { authorization: `Bearer ${t}` } })
      expect(upper.status).toBe(200)
      expect(json<Echo>(upper.body).headers.authorization).toBeUndefined()

      // The apex and names outside the domain: the relay's own routes and the path form.
      for (const host of [`${testDomain}:${relay.port}`, `127.0.0.1:${relay.port}`, "relay.example.org"]) {
        const health = yield* requestWithHost(relay.port, host, "/health")
        expect(health.status, host).toBe(200)
        expect(json(health.body), host).toMatchObject({ ok: true })
        const viaPath = yield* requestWithHost(relay.port, host, "/hosts/acme:web/echo?x=1", { headers: { authorization: `Bearer ${t}` } })
        expect(viaPath.status, host).toBe(200)
        expect(json<Echo>(viaPath.body).url).toBe("/echo?x=1")
        const viaQuery = yield* requestWithHost(relay.port, host, `/hosts/acme:web/echo?token=${t}`)
        expect(viaQuery.status, host).toBe(200)
        expect(viaQuery.headers["set-cookie"]).toBeUndefined()
        const other = yield* requestWithHost(relay.port, host, "/other")
        expect(other.status, host).toBe(404)
      }
      // A session cookie means nothing on the path form (it is only ever set for a hostname).
      const session = yield* login(send, "web--acme", t)
      const cookieOnPath = yield* requestWithHost(relay.port, `${testDomain}:${relay.port}`, "/hosts/acme:web/echo", { headers: { cookie: session } })
      expect(cookieOnPath.status).toBe(401)
    }))
})

// --- across a peer hop -------------------------------------------------------------------------


/** An in-process relay with the public domain on this file's Redis prefix: relays on one prefix proxy to each other. */
describe("a host's hostname across a peer hop", () => {
  it.scopedLive("a relay that does not hold the host logs the browser in, and proxies its HTTP requests and WebSockets with their Host; the owner takes the session", () =>
    Effect.gen(function*() {
      const { prefix } = yield* redisPrefix("hostnames-hop")
      const owner = yield* startRedisRelay(prefix, "a", { publicDomain })
      const edge = yield* startRedisRelay(prefix, "b", { publicDomain })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(owner, web, target.url, t)
      yield* served(edge.http, web, t)
      const host = `web--acme.${testDomain}:${edge.port}`

      const loggedIn = yield* requestWithHost(edge.port, host, `/?token=${t}`)
      expect(loggedIn.status).toBe(303)
      const session = cookieOf(loggedIn.headers["set-cookie"])
      const answer = yield* requestWithHost(edge.port, host, "/echo/hop", { headers: { cookie: `${session}; app=1` } })
      expect(answer.status, answer.body).toBe(200)
      const echo = json<Echo>(answer.body)
      expect(echo.url).toBe("/echo/hop")
      expect(echo.headers).toMatchObject({ cookie: "app=1", "x-forwarded-host": host, host: `127.0.0.1:${target.port}` })

      const socket = yield* openSocket(`${edge.ws}/greet`, { host, cookie: `${session}; app=2`, origin: `http://${host}` })
      yield* Effect.promise(() => socket.waitFrames(1))
      const greeting = json<{ url: string; headers: Record<string, string> }>(socket.frames[0]!.data as string)
      expect(greeting.url).toBe("/greet")
      expect(greeting.headers).toMatchObject({ cookie: "app=2", "x-forwarded-host": host })
      // A forged session is refused (by the relay the client reached, before anything is proxied).
      const forged = yield* requestWithHost(edge.port, host, "/echo", { headers: { cookie: `${session.slice(0, -2)}xx` } })
      expect(forged.status).toBe(401)
    }), 60_000)
})
