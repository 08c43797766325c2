import { openSocket, redisPrefix, spoofedForwardingHeaders, startTarget, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as TrustProxy from "../src/config/TrustProxy.js"
import { agent, served } from "./processSupport.js"
import { get, inProcessPeerSecret, startRedisRelay, startRelay } from "./support.js"

/**
 * Spoofed forwarding headers, from a client and across a peer hop: real relays, a real host
 * agent and a target that tells what it received (HTTP request headers, and a WebSocket's
 * upgrade headers as its first frame).
 */

const hostId = "acme:laptop"

const spoofed = spoofedForwardingHeaders

type Seen = Record<string, string | undefined>


const forwardingOf = (headers: Seen): Seen =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => name.startsWith("x-") || name === "forwarded" || name.endsWith("-ip")))

const httpHeaders = (url: string, t: string, headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const res = yield* get(url, t, { headers })
    expect(res.status).toBe(200)
    return ((yield* Effect.promise(() => res.json())) as { headers: Seen }).headers
  })

const socketHeaders = (url: string, t: string, headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const socket = yield* openSocket(url, { authorization: `Bearer ${t}`, ...headers })
    yield* Effect.promise(() => socket.waitFrames(1))
    socket.ws.close()
    return (JSON.parse(socket.frames[0]!.data as string) as { headers: Seen }).headers
  })

/** What the target must see for a client the relay on `port` saw directly at 127.0.0.1. */
const direct = (port: number): Seen => ({
  "x-forwarded-for": "127.0.0.1",
  "x-forwarded-proto": "http",
  "x-forwarded-host": `127.0.0.1:${port}`,
  forwarded: `for=127.0.0.1;host="127.0.0.1:${port}";proto=http`
})

describe("spoofed forwarding headers from a client", () => {
  it.scopedLive("trust none: over HTTP and WebSocket the target sees the relay's values, never the client's", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(relay, hostId, target.url, t)
      const base = `/hosts/${hostId}/echo`
      expect(forwardingOf(yield* httpHeaders(`${relay.http}${base}`, t, spoofed))).toEqual(direct(relay.port))
      expect(forwardingOf(yield* socketHeaders(`${relay.ws}/hosts/${hostId}/greet`, t, spoofed))).toEqual(direct(relay.port))
    }))

  it.scopedLive("trusted proxy: its X-Forwarded-For names the client, its proto and host are kept; what the client wrote before it is not", () =>
    Effect.gen(function*() {
      // The test itself connects from 127.0.0.1: here it plays the load balancer in front.
      const relay = yield* startRelay({ trustProxy: TrustProxy.parseOrThrow("127.0.0.1, 10.0.0.0/8") })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(relay, hostId, target.url, t)
      const fromProxy = {
        ...spoofed,
        "x-forwarded-for": "6.6.6.6, 203.0.113.9, 10.0.0.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "app.example"
      }
      const expected: Seen = {
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "app.example",
        forwarded: "for=203.0.113.9;host=app.example;proto=https"
      }
      expect(forwardingOf(yield* httpHeaders(`${relay.http}/hosts/${hostId}/echo`, t, fromProxy))).toEqual(expected)
      expect(forwardingOf(yield* socketHeaders(`${relay.ws}/hosts/${hostId}/greet`, t, fromProxy))).toEqual(expected)
    }))

  it.scopedLive("a proxy list that does not name the peer: the same headers count for nothing", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay({ trustProxy: TrustProxy.parseOrThrow("10.0.0.0/8") })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(relay, hostId, target.url, t)
      const seen = yield* httpHeaders(`${relay.http}/hosts/${hostId}/echo`, t, { ...spoofed, "x-forwarded-for": "6.6.6.6, 10.0.0.7" })
      expect(forwardingOf(seen)).toEqual(direct(relay.port))
    }))

  it.scopedLive("trust fly: Fly-Client-IP and Fly's X-Forwarded-Proto are the client's; without Fly-Client-IP nothing is believed", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay({ trustProxy: TrustProxy.fly })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(relay, hostId, target.url, t)
      const viaFly = yield* httpHeaders(`${relay.http}/hosts/${hostId}/echo`, t, {
        "fly-client-ip": "2001:db8::7",
        "x-forwarded-proto": "https",
        "x-forwarded-for": "6.6.6.6, 2001:db8::7",
        "x-forwarded-host": "bank.example"
      })
      expect(forwardingOf(viaFly)).toEqual({
        "x-forwarded-for": "2001:db8::7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": `127.0.0.1:${relay.port}`,
        forwarded: `for="[2001:db8::7]";host="127.0.0.1:${relay.port}";proto=https`
      })
      const { "fly-client-ip": _, ...withoutFly } = spoofed
      expect(forwardingOf(yield* httpHeaders(`${relay.http}/hosts/${hostId}/echo`, t, withoutFly))).toEqual(direct(relay.port))
    }))
})

// --- across a peer hop -------------------------------------------------------------------------

/** An in-process relay on this file's Redis prefix: relays on one prefix proxy to each other. */
describe("spoofed forwarding headers across a peer hop", () => {
  it.scopedLive("the relay the client reached decides; the relay holding the host keeps its values (HTTP and WebSocket)", () =>
    Effect.gen(function*() {
      const { prefix } = yield* redisPrefix("forwarding-hop")
      const owner = yield* startRedisRelay(prefix, "a")
      const edge = yield* startRedisRelay(prefix, "b")
      // A third relay with a trusted proxy in front (the test connects from 127.0.0.1).
      const behindProxy = yield* startRedisRelay(prefix, "c", { trustProxy: TrustProxy.parseOrThrow("127.0.0.1") })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(owner, hostId, target.url, t)
      yield* served(edge.http, hostId, t)
      yield* served(behindProxy.http, hostId, t)
      const path = `/hosts/${hostId}/echo`

      // A client at the edge relay spoofs: the host sees what the edge saw, not what the
      // owner saw of the edge (no second address, no peer credentials).
      for (const seen of [yield* httpHeaders(`${edge.http}${path}`, t, spoofed), yield* socketHeaders(`${edge.ws}/hosts/${hostId}/greet`, t, spoofed)]) {
        expect(forwardingOf(seen)).toEqual(direct(edge.port))
        expect(seen["x-effect-relay-peer-secret"]).toBeUndefined()
      }

      // Behind a trusted proxy, the client the proxy named travels through the hop unchanged.
      const fromProxy = { ...spoofed, "x-forwarded-for": "6.6.6.6, 203.0.113.9", "x-forwarded-proto": "https", "x-forwarded-host": "app.example" }
      const named: Seen = {
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "app.example",
        forwarded: "for=203.0.113.9;host=app.example;proto=https"
      }
      expect(forwardingOf(yield* httpHeaders(`${behindProxy.http}${path}`, t, fromProxy))).toEqual(named)
      expect(forwardingOf(yield* socketHeaders(`${behindProxy.ws}/hosts/${hostId}/greet`, t, fromProxy))).toEqual(named)
    }), 60_000)

  it.scopedLive("posing as a peer: without the secret 403; a request with the secret is a peer's and is believed", () =>
    Effect.gen(function*() {
      const { prefix } = yield* redisPrefix("forwarding-forged")
      const owner = yield* startRedisRelay(prefix, "a")
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(owner, hostId, target.url, t)
      yield* served(owner.http, hostId, t)
      const url = `${owner.http}/hosts/${hostId}/echo`
      for (const secret of [undefined, "wrong-secret", `${inProcessPeerSecret}x`]) {
        const forged = yield* get(url, t, {
          headers: { ...spoofed, "x-effect-relay-hop": "1", ...(secret === undefined ? {} : { "x-effect-relay-peer-secret": secret }) }
        })
        expect(forged.status, String(secret)).toBe(403)
        yield* Effect.promise(() => forged.text())
      }
      const socket = yield* Effect.either(openSocket(`ws://127.0.0.1:${owner.port}/hosts/${hostId}/echo`, {
        authorization: `Bearer ${t}`,
        ...spoofed,
        "x-effect-relay-hop": "1",
        "x-effect-relay-peer-secret": "wrong-secret"
      }))
      expect(socket._tag === "Left" && (socket.left as { status?: number }).status).toBe(403)
      // The secret is what makes a peer: its forwarding headers are then the first relay's.
      const peer = yield* httpHeaders(url, t, { ...spoofed, "x-effect-relay-hop": "1", "x-effect-relay-peer-secret": inProcessPeerSecret })
      expect(forwardingOf(peer)).toEqual({
        "x-forwarded-for": "6.6.6.6",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "bank.example",
        forwarded: "for=6.6.6.6;proto=https;host=bank.example"
      })
    }), 60_000)
})
