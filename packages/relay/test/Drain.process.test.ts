import { CloseCodes } from "@effect-relay/protocol"
import { reconnectsTotal } from "@effect-relay/host"
import { fakeHost, freePort, messageOf, okResponse, partialRequest, startRelayProcess, startTarget, testSecret, token, type RelayProcess } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { agent, served } from "./processSupport.js"

/**
 * The drain as production runs it: `effect-relay serve` as a child process,
 * real host agents and raw sockets as hosts, and a real signal.
 */
const env = (extra: Record<string, string> = {}) => ({ RELAY_AUTH_SECRET: testSecret, REGION: "test", MACHINE_ID: "drain-1", ...extra })

const drainReconnects = Metric.value(Metric.tagged(reconnectsTotal, "reason", "drain")).pipe(Effect.map((s) => s.count))

/** Sends a tunnel upgrade's first half now; `finish` sends the rest and returns the raw reply (read until close). */
const halfUpgrade = (port: number, hostId: string, t: string) =>
  Effect.map(
    partialRequest(
      port,
      `GET /tunnel?hostId=${hostId} HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer ${t}\r\n` +
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    ),
    (half) => ({ finish: half.finish("Sec-WebSocket-Version: 13\r\n\r\n", () => false) })
  )

/**
 * A host that never answers, with one request in flight: its tunnel holds the drain for the
 * whole flush window (an idle tunnel is closed at once).
 */
const stubbornHost = (relay: RelayProcess, name: string, t: string) =>
  Effect.gen(function*() {
    const host = yield* fakeHost(relay.ws, `acme:${name}`, t)
    yield* Effect.promise(() => relay.waitForLog("tunnel.registered"))
    yield* Effect.forkDaemon(Effect.promise(() => fetch(`${relay.http}/hosts/acme:${name}/hang`, { headers: { authorization: `Bearer ${t}` } }).catch(() => undefined)))
    yield* Effect.promise(() => host.waitFrames(1))
    return host
  })

const logOrder = (relay: RelayProcess, names: ReadonlyArray<string>) => names.map((n) => relay.logs.findIndex((l) => messageOf(l) === n))

describe("drain of a relay process on a signal", () => {
  it.scopedLive("only idle tunnels (the drain ends within one event-loop round): each host still gets the drain frame and 4001 before the process exits", () =>
    Effect.gen(function*() {
      const relay = yield* startRelayProcess({ env: env() })
      const t = yield* token({ org: "acme" })
      const hosts = yield* Effect.forEach(["i1", "i2", "i3"], (name) => fakeHost(relay.ws, `acme:${name}`, t))
      while (relay.logs.filter((l) => messageOf(l) === "tunnel.registered").length < 3) yield* Effect.sleep("20 millis")
      relay.signal("SIGINT")
      expect(yield* Effect.promise(() => relay.exited)).toMatchObject({ code: 0, signal: null })
      for (const host of hosts) {
        expect((yield* Effect.promise(() => host.closed)).code).toBe(CloseCodes.Drain)
        expect(host.messages().at(-1)?._tag).toBe("drain")
      }
    }))

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it.scopedLive(`${signal}: drain frame then 4001 to every host, registrations refused 4001, entries cleared, exit 0, phases logged in order`, () =>
      Effect.gen(function*() {
        const relay = yield* startRelayProcess({ env: env({ DRAIN_FLUSH_MS: "1500" }) })
        const target = yield* startTarget
        const t = yield* token({ org: "acme" })
        const before = yield* drainReconnects
        yield* Effect.forEach(["a1", "a2", "a3"], (name) => agent(relay, `acme:${name}`, target.url, t))
        const raw = yield* Effect.forEach(["r1", "r2"], (name) => fakeHost(relay.ws, `acme:${name}`, t, (req) => okResponse(req.id)))
        for (const name of ["a1", "a2", "a3", "r1", "r2"]) yield* served(relay.http, `acme:${name}`, t)
        const stubborn = yield* stubbornHost(relay, "s1", t) // keeps the drain going for the flush window
        const late = yield* halfUpgrade(relay.port, "acme:late", t)

        relay.signal(signal)
        yield* Effect.promise(() => relay.waitForLog("drain.start"))
        const refused = yield* late.finish
        expect(refused.toString()).toMatch(/^HTTP\/1.1 101/)
        const frame = refused.subarray(refused.indexOf("\r\n\r\n") + 4)
        expect(frame[0]).toBe(0x88)
        expect(frame.readUInt16BE(2)).toBe(CloseCodes.Drain)

        const exit = yield* Effect.promise(() => relay.exited)
        expect(exit).toMatchObject({ code: 0, signal: null })
        for (const host of [...raw, stubborn]) {
          expect(host.messages().at(-1)?._tag).toBe("drain")
          expect((yield* Effect.promise(() => host.closed)).code).toBe(CloseCodes.Drain)
        }
        // The real agents took the drain path (reset backoff), not a failure.
        expect((yield* drainReconnects) - before).toBeGreaterThanOrEqual(3)

        const phases = ["drain.start", "drain.notified", "drain.closed", "drain.stopped_accepting", "drain.directory_cleared", "drain.done"]
        const order = logOrder(relay, phases)
        expect(order.every((i) => i >= 0), JSON.stringify(order)).toBe(true)
        expect([...order].sort((a, b) => a - b)).toEqual(order)
        const byName = (n: string) => relay.logs.find((l) => messageOf(l) === n)!.annotations
        expect(byName("drain.notified").tunnels).toBe(6)
        expect(byName("drain.directory_cleared").entries).toBe(6)
        expect(typeof byName("drain.done").ms).toBe("number")
        expect(relay.logs.some((l) => messageOf(l) === "tunnel.unregister_failed")).toBe(false)
      }))
  }

  it.scopedLive("a second signal during a slow drain exits at once, with a log line", () =>
    Effect.gen(function*() {
      const relay = yield* startRelayProcess({ env: env({ DRAIN_FLUSH_MS: "5000" }) })
      const t = yield* token({ org: "acme" })
      yield* stubbornHost(relay, "stubborn", t) // the drain would take 5 s
      relay.signal("SIGINT")
      yield* Effect.promise(() => relay.waitForLog("drain.notified"))
      const second = Date.now()
      relay.signal("SIGTERM")
      const exit = yield* Effect.promise(() => relay.exited)
      expect(Date.now() - second).toBeLessThan(1000)
      expect(exit.code).toBe(143)
      expect(relay.logs.some((l) => messageOf(l) === "drain.aborted")).toBe(true)
      expect(relay.logs.some((l) => messageOf(l) === "drain.done")).toBe(false)
    }), 30_000)

  it.scopedLive("a drain that overruns its deadline logs what was open and exits 1", () =>
    Effect.gen(function*() {
      const relay = yield* startRelayProcess({ env: env({ DRAIN_FLUSH_MS: "5000", DRAIN_DEADLINE_MS: "1000" }) })
      const t = yield* token({ org: "acme" })
      yield* stubbornHost(relay, "stubborn", t)
      const start = Date.now()
      relay.signal("SIGINT")
      const exit = yield* Effect.promise(() => relay.exited)
      const took = Date.now() - start
      expect(exit.code, JSON.stringify(relay.logs.map((l) => [messageOf(l), l.annotations]))).toBe(1)
      expect(took).toBeGreaterThanOrEqual(950)
      expect(took).toBeLessThan(3000)
      const exceeded = relay.logs.find((l) => messageOf(l) === "drain.deadline_exceeded")
      expect(exceeded?.annotations.openTunnels).toBe(1)
      expect(exceeded?.annotations.hostIds).toEqual(["acme:stubborn"])
    }), 30_000)
})

describe("restart in place", () => {
  it.scopedLive("every host is served again through the new process within (restart time + 1 s) of the signal", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const first = yield* startRelayProcess({ env: env(), port })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      const names = ["h1", "h2", "h3", "h4", "h5"]
      yield* Effect.forEach(names, (name) => agent(first, `acme:${name}`, target.url, t))
      for (const name of names) yield* served(first.http, `acme:${name}`, t)

      const signalledAt = Date.now()
      first.signal("SIGINT")
      const exit = yield* Effect.promise(() => first.exited)
      expect(exit.code).toBe(0)
      const second = yield* startRelayProcess({ env: env(), port })
      const restartMs = Date.now() - signalledAt
      const backMs = yield* Effect.forEach(names, (name) => Effect.map(served(second.http, `acme:${name}`, t), (at) => at - signalledAt), {
        concurrency: "unbounded"
      })
      const worst = Math.max(...backMs)
      console.log(
        `restart in place: drain ${first.logs.find((l) => messageOf(l) === "drain.done")?.annotations.ms} ms, ` +
          `signal -> new process listening ${restartMs} ms, hosts back after ${backMs.join(", ")} ms ` +
          `(worst ${worst - restartMs} ms after listening)`
      )
      for (const ms of backMs) expect(ms).toBeLessThanOrEqual(restartMs + 1000)
    }), 60_000)
})
