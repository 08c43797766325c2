import { appCookie, startWebApp, testDomain, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { chromium } from "playwright-core"
import { agent } from "./processSupport.js"
import { startRelay } from "./support.js"

/**
 * A real browser through the relay: headless Chromium (Debian's, driven by playwright-core;
 * `.ci/run` installs it) opens `http://web--acme.relay.test:PORT/?token=...` on an app written
 * with absolute paths and a cookie of its own. `*.relay.test` is 127.0.0.1 by Chromium's
 * host-resolver rules. Then a page of another tenant, under the same domain, tries to use the
 * first host's session.
 */

const chromiumPath = "/usr/bin/chromium"

/**
 * Chromium in a fresh profile, closed (and its profile removed) with the scope. `secureOrigins`:
 * plain-http origins it treats as https would be (Fetch Metadata is only sent to those).
 */
const browser = (secureOrigins: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      if (!fs.existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: install Debian's chromium (apt-get install chromium; .ci/run does)`)
      const profile = fs.mkdtempSync(path.join(os.tmpdir(), "relay-browser-"))
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: chromiumPath,
        headless: true,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          `--host-resolver-rules=MAP *.${testDomain} 127.0.0.1`,
          ...(secureOrigins.length === 0 ? [] : [`--unsafely-treat-insecure-origin-as-secure=${secureOrigins.join(",")}`])
        ]
      })
      return { context, profile }
    }),
    ({ context, profile }) =>
      Effect.promise(async () => {
        await context.close()
        fs.rmSync(profile, { recursive: true, force: true })
      })
  ).pipe(Effect.map(({ context }) => context))

/** A relay with the public domain, the app behind acme:web, and another tenant's host other:evil on the same app. */
const setup = Effect.gen(function*() {
  const relay = yield* startRelay({ publicDomain: Option.some(testDomain) })
  const app = yield* startWebApp
  const acme = yield* token({ org: "acme" })
  const other = yield* token({ org: "other" })
  yield* agent(relay, "acme:web", app.url, acme)
  yield* agent(relay, "other:evil", app.url, other)
  const origin = (label: string) => `http://${label}.${testDomain}:${relay.port}`
  return { relay, app, acme, other, origin }
})

describe("a browser on a host's hostname", () => {
  it.scopedLive("an app with absolute paths works: the login becomes a cookie, the page, its script, its fetch and its WebSocket reach the app, the app's cookie round-trips, the relay's never reaches it", () =>
    Effect.gen(function*() {
      const { acme, app, origin, relay } = yield* setup
      const context = yield* browser()
      const web = origin("web--acme")

      const page = yield* Effect.promise(() => context.newPage())
      const response = yield* Effect.promise(() => page.goto(`${web}/?token=${acme}`))
      expect(response?.status()).toBe(200)
      // The token is gone from the address bar: the login redirected.
      expect(page.url()).toBe(`${web}/`)
      // What app.js writes once its fetch("/api/data") and its WebSocket answered.
      yield* Effect.promise(() => page.waitForFunction(() => !document.body.textContent!.includes("waiting"), null, { timeout: 10_000 }))
      expect(yield* Effect.promise(() => page.textContent("#api"))).toBe(`api: 200 ${appCookie}`)
      expect(yield* Effect.promise(() => page.textContent("#ws"))).toBe(`ws: pong ${appCookie}`)

      // The browser keeps the relay's session for this hostname only, HttpOnly and Lax; the JWT is nowhere.
      const cookies = yield* Effect.promise(() => context.cookies())
      const session = cookies.find((c) => c.name === "effect-relay-session")
      expect(session).toMatchObject({ domain: `web--acme.${testDomain}`, path: "/", httpOnly: true, secure: false, sameSite: "Lax" })
      expect(session!.expires).toBeLessThanOrEqual(Date.now() / 1000 + 3600 + 1)
      expect(JSON.stringify(cookies)).not.toContain(acme)
      expect(yield* Effect.promise(() => page.evaluate(() => document.cookie))).toBe(appCookie)

      // The app saw its page, script, fetch and WebSocket, each with the Host it expects and the
      // hostname the browser used; never the relay's cookie.
      const paths = app.seen.map((s) => `${s.websocket ? "ws " : ""}${s.method} ${s.url}`)
      expect(paths).toEqual(expect.arrayContaining(["GET /", "GET /assets/app.js", "GET /api/data", "ws GET /ws"]))
      for (const seen of app.seen) {
        expect(seen.headers.host).toBe(new URL(app.url).host)
        expect(seen.headers["x-forwarded-host"]).toBe(`web--acme.${testDomain}:${relay.port}`)
        expect(String(seen.headers.cookie ?? "")).not.toContain("effect-relay-session")
      }

      // Signing out: the next page load is the relay's page asking for a token.
      yield* Effect.promise(() => page.goto(`${web}/_logout`))
      expect(yield* Effect.promise(() => page.textContent("h1"))).toBe("Signed out")
      const again = yield* Effect.promise(() => page.goto(`${web}/`))
      expect(again?.status()).toBe(401)
      expect(yield* Effect.promise(() => page.textContent("h1"))).toBe("This host needs a token")
    }), 60_000)

  it.scopedLive("another tenant's page under the same domain (one site to the browser, so the Lax cookie goes along) cannot use the session: its credentialed POST, GET and WebSocket to the host are refused", () =>
    Effect.gen(function*() {
      const { acme, app, origin, other } = yield* setup
      const web = origin("web--acme")
      const evil = origin("evil--other")
      // As over https: Chromium sends Fetch Metadata (Sec-Fetch-Site...) only to trustworthy origins.
      const context = yield* browser([web, evil])
      const page = yield* Effect.promise(() => context.newPage())
      yield* Effect.promise(() => page.goto(`${web}/?token=${acme}`))
      yield* Effect.promise(() => page.waitForFunction(() => document.body.textContent!.includes("ws: pong"), null, { timeout: 10_000 }))
      const seenBefore = app.seen.length

      const attacker = yield* Effect.promise(() => context.newPage())
      yield* Effect.promise(() => attacker.goto(`${evil}/attack?victim=${encodeURIComponent(web)}&token=${other}`))
      yield* Effect.promise(() => attacker.waitForFunction(() => document.body.textContent!.includes("attack: done"), null, { timeout: 10_000 }))
      expect(yield* Effect.promise(() => attacker.textContent("#attack"))).toBe("attack: done ws:refused")
      const reachedAcme = app.seen.slice(seenBefore).filter((s) => s.headers["x-forwarded-host"] === new URL(web).host)
      expect(reachedAcme).toEqual([])
      // A link from that page to the host is a navigation: it opens the host with the session.
      yield* Effect.promise(() => attacker.evaluate((href) => { location.href = href }, `${web}/`))
      yield* Effect.promise(() => attacker.waitForFunction(() => document.body.textContent!.includes("ws: pong"), null, { timeout: 10_000 }))
    }), 60_000)
})
