import { CloseCodes, CloseReasons, InstanceHeader, SessionHeader } from "@effect-relay/protocol"
import { fakeHost, messageOf, okResponse, openSocket, redisPrefix, redisUrl, startRelayProcess, startTarget, testSecret, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { agent, served } from "./processSupport.js"

/**
 * Several relay processes on one real Redis (this file's own key prefix),
 * real host agents, a local target.
 */
const peerSecret = "peer-secret-for-tests-0123456789"

const relayEnv = (prefix: string, region: string, machineId: string, extra: Record<string, string> = {}) => ({
  RELAY_AUTH_SECRET: testSecret,
  REDIS_URL: redisUrl(),
  REDIS_KEY_PREFIX: prefix,
  RELAY_PEER_SECRET: peerSecret,
  REGION: region,
  MACHINE_ID: machineId,
  ROUTING: "proxy",
  ...extra
})

/** Relays A and B (region iad, machines a and b) on this test's Redis prefix. */
const twoRelays = (prefix: string) =>
  Effect.all([
    startRelayProcess({ env: relayEnv(prefix, "iad", "a") }),
    startRelayProcess({ env: relayEnv(prefix, "iad", "b") })
  ], { concurrency: 2 })

const json = (res: Response) => Effect.promise(() => res.json() as Promise<Record<string, unknown>>)
const fetchWith = (url: string, t: string, init: RequestInit = {}) =>
  Effect.promise(() => fetch(url, { ...init, headers: { authorization: `Bearer ${t}`, ...(init.headers as Record<string, string> ?? {}) } }))

describe("many relays on one Redis", () => {
  it.scopedLive("proxy mode: a host on relay A is reachable through relay B, over HTTP and WebSocket; the peer path is guarded", () =>
    Effect.gen(function*() {
      const { prefix } = yield* redisPrefix("multi-proxy")
      const [a, b] = yield* twoRelays(prefix)
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(a, "acme:laptop", target.url, t)
      yield* served(b.http, "acme:laptop", t)

      const viaB = yield* fetchWith(`${b.http}/hosts/acme:laptop/echo/x?y=1`, t, { method: "POST", body: "hello" })
      expect(viaB.status).toBe(200)
      const seen = yield* json(viaB)
      expect(seen.url).toBe("/echo/x?y=1")
      expect(Buffer.from(seen.bodyBase64 as string, "base64").toString()).toBe("hello")
      expect((seen.headers as Record<string, string>)["x-effect-relay-peer-secret"]).toBeUndefined()

      expect(yield* json(yield* fetchWith(`${b.http}/hosts/acme:laptop/_whoowns`, t))).toEqual({ region: "iad", machineId: "a", owners: ["iad:a"] })
      expect((yield* fetchWith(`${b.http}/hosts/acme:nobody/_whoowns`, t)).status).toBe(404)

      const socket = yield* openSocket(`${b.ws}/hosts/acme:laptop/chat`, { authorization: `Bearer ${t}` })
      socket.ws.send("through two relays")
      socket.ws.send(Buffer.from([0, 1, 2, 255]))
      yield* Effect.promise(() => socket.waitFrames(2))
      expect(socket.frames[0]).toEqual({ data: "through two relays", binary: false })
      expect(socket.frames[1]).toEqual({ data: Buffer.from([0, 1, 2, 255]), binary: true })
      socket.ws.send("close:4100")
      expect((yield* Effect.promise(() => socket.closed)).code).toBe(4100)

      // The loop guard without the peer secret: 403. With it, for a host B does not hold: 503, no second hop.
      const forged = yield* fetchWith(`${b.http}/hosts/acme:laptop/echo`, t, { headers: { "x-effect-relay-hop": "1" } })
      expect(forged.status).toBe(403)
      const guarded = yield* fetchWith(`${b.http}/hosts/acme:laptop/echo`, t, {
        headers: { "x-effect-relay-hop": "1", "x-effect-relay-peer-secret": peerSecret }
      })
      expect(guarded.status).toBe(503)
      expect((yield* json(guarded)).error).toBe("host_offline")
    }), 60_000)

  it.scopedLive("fly-replay mode: B answers fly-replay instance=<machine> in the owner's region, region=<region> elsewhere; big bodies are proxied", () =>
    Effect.gen(function*() {
      const { prefix } = yield* redisPrefix("multi-replay")
      const [a, b, c] = yield* Effect.all([
        startRelayProcess({ env: relayEnv(prefix, "iad", "a", { ROUTING: "fly-replay" }) }),
        startRelayProcess({ env: relayEnv(prefix, "iad", "b", { ROUTING: "fly-replay" }) }),
        startRelayProcess({ env: relayEnv(prefix, "ams", "c", { ROUTING: "fly-replay" }) })
      ], { concurrency: 3 })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(a, "acme:laptop", target.url, t)
      yield* served(a.http, "acme:laptop", t)
      const sameRegion = yield* fetchWith(`${b.http}/hosts/acme:laptop/echo`, t)
      expect(sameRegion.headers.get("fly-replay")).toBe("instance=a")
      const otherRegion = yield* fetchWith(`${c.http}/hosts/acme:laptop/echo`, t)
      expect(otherRegion.headers.get("fly-replay")).toBe("region=iad")
      const big = Buffer.alloc(1_500_000, 7)
      const proxied = yield* fetchWith(`${b.http}/hosts/acme:laptop/echo-bytes`, t, { method: "POST", body: big })
      expect(proxied.status).toBe(200)
      expect(proxied.headers.get("fly-replay")).toBeNull()
      expect(Buffer.from(yield* Effect.promise(() => proxied.arrayBuffer())).equals(big)).toBe(true)
    }), 60_000)

  it.scopedLive("two tunnels of one agent instance on A and B coexist; a new instance on B replaces the older instance's tunnel on A (closed 1000), and A's late unregister leaves B's entry", () =>
    Effect.gen(function*() {
      const { prefix, redis } = yield* redisPrefix("multi-instance")
      const [a, b] = yield* twoRelays(prefix)
      const t = yield* token({ org: "acme" })
      const agentHeaders = (instance: string, session: number) => ({ [InstanceHeader]: instance, [SessionHeader]: String(session) })
      const owners = Effect.promise(() => redis.hget(`${prefix}owners`, "acme:mover"))
      const answer = (from: string) => (req: { id: string }) => okResponse(req.id, from)

      const oldOnA = yield* fakeHost(a.ws, "acme:mover", t, answer("old on A"), agentHeaders("old", 0))
      yield* Effect.promise(() => a.waitForLog("tunnel.registered"))
      const oldOnB = yield* fakeHost(b.ws, "acme:mover", t, answer("old on B"), agentHeaders("old", 1))
      yield* Effect.promise(() => b.waitForLog("tunnel.registered"))
      expect(yield* owners).toBe("iad:a|iad:b")
      // Each relay serves its own tunnel.
      for (const [relay, from] of [[a, "old on A"], [b, "old on B"]] as const) {
        const res = yield* fetchWith(`${relay.http}/hosts/acme:mover/x`, t)
        expect(yield* Effect.promise(() => res.text())).toBe(from)
      }

      // A new instance of the host registers on B: the old instance's tunnels go on both relays.
      yield* fakeHost(b.ws, "acme:mover", t, answer("new on B"), agentHeaders("new", 0))
      expect(yield* Effect.promise(() => oldOnA.closed)).toEqual({ code: CloseCodes.Normal, reason: CloseReasons.Replaced })
      expect(yield* Effect.promise(() => oldOnB.closed)).toEqual({ code: CloseCodes.Normal, reason: CloseReasons.Replaced })
      yield* Effect.sleep("200 millis") // A's unregister of its old tunnel has run (and deleted nothing)
      expect(yield* owners).toBe("iad:b")
      for (const relay of [a, b]) {
        const res = yield* fetchWith(`${relay.http}/hosts/acme:mover/x`, t)
        expect(yield* Effect.promise(() => res.text())).toBe("new on B")
      }
    }), 60_000)

  it.scopedLive("SIGKILL then restart with the same machine id: its stale entries are cleared before it listens (count logged); a drain leaves none", () =>
    Effect.gen(function*() {
      const { prefix, redis } = yield* redisPrefix("multi-kill")
      const env = relayEnv(prefix, "iad", "k")
      const first = yield* startRelayProcess({ env })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      const agents = yield* Effect.forEach(["k1", "k2", "k3"], (n) => agent(first, `acme:${n}`, target.url, t))
      for (const n of ["k1", "k2", "k3"]) yield* served(first.http, `acme:${n}`, t)
      first.signal("SIGKILL")
      yield* Effect.promise(() => first.exited)
      for (const a of agents) yield* a.stop // nobody comes back: only the stale entries remain
      expect(yield* Effect.promise(() => redis.hlen(`${prefix}tunnels`))).toBe(3)

      const second = yield* startRelayProcess({ env })
      const order = ["relay.startup_cleared", "relay.listening"].map((m) => second.logs.findIndex((l) => messageOf(l) === m))
      expect(order[0]).toBeGreaterThanOrEqual(0)
      expect(order[0]).toBeLessThan(order[1]!)
      expect(second.logs[order[0]!]!.annotations.entries).toBe(3)
      expect(yield* Effect.promise(() => redis.hlen(`${prefix}tunnels`))).toBe(0)

      // And a drained relay leaves nothing behind either.
      yield* Effect.forEach(["d1", "d2"], (n) => agent(second, `acme:${n}`, target.url, t))
      for (const n of ["d1", "d2"]) yield* served(second.http, `acme:${n}`, t)
      expect(yield* Effect.promise(() => redis.hlen(`${prefix}tunnels`))).toBe(2)
      second.signal("SIGTERM")
      expect((yield* Effect.promise(() => second.exited)).code).toBe(0)
      const cleared = second.logs.find((l) => messageOf(l) === "drain.directory_cleared")
      expect(cleared?.annotations.entries).toBe(2)
      expect(yield* Effect.promise(() => redis.hlen(`${prefix}tunnels`))).toBe(0)
      expect(yield* Effect.promise(() => redis.zcard(`${prefix}ttl`))).toBe(0)
    }), 60_000)
})
