import {
  fakeHost,
  type LoggingProcess,
  messageOf,
  openSocket,
  requestWithHost,
  startHostProcess,
  startRelayProcess,
  startTarget,
  testSecret,
  token
} from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"

/**
 * "No token ever logged": the real relay and host CLIs as child processes at
 * LOG_LEVEL=debug, tokens passed every way users pass them, requests that
 * succeed and requests that fail, then every byte both kinds of process wrote
 * is searched for each token and for its signature alone.
 */

const debug = { LOG_LEVEL: "debug" }

/** The first line of `text` containing `secret`, for a readable failure. */
const lineWith = (text: string, secret: string) => text.split("\n").find((line) => line.includes(secret))

/** A token whose signature was changed: it does not verify (401), and must not be logged either. */
const tampered = (jwt: string) => {
  const [header, payload, signature] = jwt.split(".") as [string, string, string]
  // The first character: every one of its bits is signature (the last one's low bits are padding,
  // so changing it alone may leave the signature as it was).
  const first = signature[0] === "A" ? "B" : "A"
  return `${header}.${payload}.${first}${signature.slice(1)}`
}

const request = (url: string, init: RequestInit = {}) =>
  Effect.promise(() => fetch(url, init).then(async (res) => ({ status: res.status, body: await res.text() })))

describe("no token is ever logged (relay and host processes, LOG_LEVEL=debug)", () => {
  it.scopedLive("tokens in RELAY_TOKEN, --token, Authorization and ?token= appear in no line of any process's stdout or stderr", () =>
    Effect.gen(function*() {
      const [hostEnvToken, hostFlagToken, clientToken, otherOrgToken, expiredToken] = yield* Effect.all([
        token({ org: "acme" }),
        token({ orgs: ["acme", "beta"] }),
        token({ org: "acme", expiresIn: 1800 }),
        token({ org: "evil" }),
        token({ org: "acme", expiresIn: -60 })
      ])
      const badSignatureToken = tampered(clientToken)
      const secrets: Record<string, string> = {
        hostEnvToken,
        hostFlagToken,
        clientToken,
        otherOrgToken,
        expiredToken,
        badSignatureToken,
        relayAuthSecret: testSecret
      }

      const relay = yield* startRelayProcess({ env: { RELAY_AUTH_SECRET: testSecret, DRAIN_FLUSH_MS: "100", PUBLIC_DOMAIN: "relay.test", ...debug } })
      const target = yield* startTarget
      const common = ["--relay", relay.ws, "--target", target.url, "--backoff-base-ms", "200", "--backoff-cap-ms", "400"]
      const [hostEnv, hostFlag, hostRefused] = yield* Effect.all([
        startHostProcess({ args: [...common, "--host-id", "acme:env"], env: { RELAY_TOKEN: hostEnvToken, ...debug } }),
        startHostProcess({ args: [...common, "--host-id", "acme:flag", "--token", hostFlagToken], env: debug }),
        // A host whose token is for another org: refused, and says why.
        startHostProcess({
          args: [...common, "--host-id", "acme:refused", "--token", otherOrgToken],
          env: debug,
          waitFor: "tunnel.reconnect_in"
        })
      ], { concurrency: "unbounded" })
      const processes: Record<string, LoggingProcess> = { relay, hostEnv, hostFlag, hostRefused }

      const base = relay.http
      const bearer = (t: string) => ({ authorization: `Bearer ${t}` })
      // Succeed: the token as a header, as a query parameter, with a body, and a WebSocket with ?token=.
      expect((yield* request(`${base}/hosts/acme:env/echo?a=1`, { headers: bearer(clientToken) })).status).toBe(200)
      expect((yield* request(`${base}/hosts/acme:flag/echo?token=${clientToken}&b=2`)).status).toBe(200)
      expect((yield* request(`${base}/hosts/acme:env/echo`, { method: "POST", headers: bearer(clientToken), body: "hello" })).status).toBe(200)
      expect((yield* request(`${base}/hosts/acme:env/status/500`, { headers: bearer(clientToken) })).status).toBe(500)
      const ws = yield* openSocket(`${relay.ws}/hosts/acme:flag/chat?token=${clientToken}`)
      ws.ws.send("ping over the tunnel")
      yield* Effect.promise(() => ws.waitFrames(1))
      ws.ws.close(1000, "done")
      yield* Effect.promise(() => ws.closed)
      // A tunnel registered with the token in its query (the relay accepts that too).
      const queryTunnel = yield* openSocket(`${relay.ws}/tunnel?hostId=acme:raw&token=${clientToken}`)
      while (!relay.logs.some((l) => messageOf(l) === "tunnel.registered" && l.annotations.hostId === "acme:raw")) {
        yield* Effect.sleep("20 millis")
      }
      queryTunnel.ws.close(1000, "done")
      yield* Effect.promise(() => queryTunnel.closed)

      // A browser's login on a host's hostname, and a request with the session cookie it got: the
      // cookie is a secret too.
      const hostname = `env--acme.relay.test:${relay.port}`
      const login = yield* requestWithHost(relay.port, hostname, `/echo?token=${clientToken}`)
      expect(login.status).toBe(303)
      const session = String(login.headers["set-cookie"]?.[0]).split(";")[0]!
      secrets.sessionCookie = session.slice(session.indexOf("=") + 1)
      expect((yield* requestWithHost(relay.port, hostname, "/echo", { headers: { cookie: session } })).status).toBe(200)
      expect((yield* requestWithHost(relay.port, hostname, `/echo?token=${otherOrgToken}`)).status).toBe(403)
      expect((yield* requestWithHost(relay.port, hostname, `/echo?token=${badSignatureToken}`, { headers: { accept: "text/html" } })).status).toBe(401)
      expect((yield* requestWithHost(relay.port, hostname, "/echo", { headers: { cookie: `${session}x` } })).status).toBe(401)

      // Fail: wrong org, no such host, bad hostId, unknown path, bad signature, expired, a token of another org on a tunnel.
      const failures: Array<[string, RequestInit, number]> = [
        [`${base}/hosts/evil:x/echo`, { headers: bearer(clientToken) }, 403],
        [`${base}/hosts/evil:x/echo?token=${clientToken}`, {}, 403],
        [`${base}/hosts/acme:missing/echo?token=${clientToken}`, {}, 503],
        [`${base}/hosts/not-a-host-id/echo`, { headers: bearer(clientToken) }, 400],
        [`${base}/nowhere?token=${clientToken}`, { headers: bearer(clientToken) }, 404],
        [`${base}/hosts/acme:env/echo?token=${badSignatureToken}`, {}, 401],
        [`${base}/hosts/acme:env/echo`, { headers: bearer(expiredToken) }, 401],
        [`${base}/hosts/acme:env/echo`, { headers: bearer(otherOrgToken) }, 403]
      ]
      for (const [url, init, status] of failures) expect((yield* request(url, init)).status, url).toBe(status)
      const refusedWs = yield* Effect.either(openSocket(`${relay.ws}/hosts/acme:env/chat?token=${otherOrgToken}`))
      expect(refusedWs._tag).toBe("Left")
      expect(yield* Effect.flip(fakeHost(relay.ws, "acme:stolen", otherOrgToken))).toEqual({ status: 403 })

      // The target never saw a client's token either: the relay strips Authorization and ?token=.
      for (const seen of target.seen) expect(JSON.stringify(seen)).not.toContain(clientToken)

      // Stop everything the way operators do (drain and shutdown lines are logged too) and read all output.
      for (const proc of [hostEnv, hostFlag, hostRefused, relay]) proc.signal("SIGINT")
      yield* Effect.promise(() => Promise.all(Object.values(processes).map((p) => p.closed)))

      // The logs were really there, at debug level, so the search below searched something.
      const events = (proc: LoggingProcess) => new Set(proc.logs.map(messageOf))
      for (const event of ["tunnel.registered", "tunnel.refused", "request.failed", "drain.done"]) {
        expect(events(relay), `relay logged ${event}`).toContain(event)
      }
      expect(relay.logs.some((l) => l.logLevel === "DEBUG")).toBe(true)
      for (const host of [hostEnv, hostFlag]) {
        for (const event of ["tunnel.connecting", "tunnel.connected", "host.stopped"]) expect(events(host), event).toContain(event)
      }
      expect(events(hostFlag)).toContain("ws.open")
      expect(events(hostEnv)).toContain("tunnel.connecting")
      expect([...events(hostRefused)].some((e) => e === "tunnel.connect_refused" || e === "tunnel.closed")).toBe(true)

      const found: Array<string> = []
      for (const [name, proc] of Object.entries(processes)) {
        const output = proc.output()
        expect(output.stdout.length, `${name} wrote logs`).toBeGreaterThan(0)
        for (const [stream, text] of Object.entries(output)) {
          for (const [secretName, secret] of Object.entries(secrets)) {
            const signature = secret.split(".")[2]
            for (const [what, needle] of [[secretName, secret], [`${secretName} signature`, signature]] as const) {
              if (needle !== undefined && needle.length >= 16 && text.includes(needle)) {
                found.push(`${name} ${stream} contains ${what}: ${lineWith(text, needle)}`)
              }
            }
          }
        }
      }
      expect(found).toEqual([])
    }), 60_000)
})
