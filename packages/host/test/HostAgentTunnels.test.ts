import {
  CloseCodes,
  CloseReasons,
  DrainMessage,
  FeaturesHeader,
  HttpRequest,
  InstanceHeader,
  RelayToHostCodec,
  retryAfterReason
} from "@effect-relay/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Metric, Queue } from "effect"
import { SessionState, tunnelConnected } from "../src/index.js"
import { helloWaitMs } from "../src/TunnelSession.js"
import {
  captureLogs,
  config,
  eventually,
  fakeRelay,
  linesOf,
  nextFrame,
  reconnects,
  type RelayConnection,
  startAgent,
  target
} from "./agentSupport.js"

const gauge = Effect.map(Metric.value(tunnelConnected), (state) => state.value)

/** Sends a request down a tunnel and expects the target's answer back. */
const expectServes = (tunnel: RelayConnection, id: string) =>
  Effect.gen(function*() {
    tunnel.socket.send(RelayToHostCodec.encode(HttpRequest.make({ id, method: "GET", path: `/${id}`, headers: {} })))
    expect(yield* nextFrame(tunnel)).toMatchObject({ _tag: "http:response", id, status: 200, body: `target saw GET /${id}` })
  })

const sessionOf = (line: { readonly annotations: Record<string, unknown> }) => line.annotations.session

describe("HostAgentLive with several tunnels (fake relays over real WebSockets)", () => {
  it.scopedLive("two relay URLs: one tunnel on each, announcing cancel,hello and one instance id; both serve; the gauge counts both", () =>
    Effect.gen(function*() {
      const relays = [yield* fakeRelay(), yield* fakeRelay()] as const
      const local = yield* target
      const logs = yield* captureLogs
      const before = yield* gauge
      const { agent, stop } = yield* startAgent(config(relays[0].url, local.url, { relayUrl: [relays[0].url, relays[1].url] }), logs.layer)
      const tunnels = [yield* relays[0].nextConnection, yield* relays[1].nextConnection] as const
      for (const tunnel of tunnels) {
        expect(tunnel.request.headers[FeaturesHeader]).toBe("cancel,hello")
        expect(tunnel.request.headers[InstanceHeader]).toBe(agent.instanceId)
      }
      expect(agent.instanceId).toMatch(/^[0-9a-f-]{36}$/)
      // Relays that do not say hello: each tunnel counts as up after the hello wait.
      yield* eventually("both tunnels up", Effect.map(agent.connectedCount, (n) => n === 2), helloWaitMs + 3_000)
      expect(yield* gauge).toBe(before + 2)
      yield* expectServes(tunnels[0], "a")
      yield* expectServes(tunnels[1], "b")

      const up = linesOf(logs, "tunnel.connected")
      expect(up.map((line) => [sessionOf(line), line.annotations.relay]).sort()).toEqual([
        [0, `${relays[0].url}/`],
        [1, `${relays[1].url}/`]
      ])
      expect(up.every((line) => line.annotations.instanceId === agent.instanceId)).toBe(true)
      expect(linesOf(logs, "host.started")[0]?.annotations).toMatchObject({
        instanceId: agent.instanceId,
        tunnels: 2,
        relays: [`${relays[0].url}/`, `${relays[1].url}/`]
      })
      expect((yield* agent.tunnels.get).map((t) => t._tag)).toEqual(["Connected", "Connected"])

      yield* stop
      for (const tunnel of tunnels) expect((yield* Deferred.await(tunnel.closed)).code).toBe(CloseCodes.Normal)
      expect(yield* gauge).toBe(before)

      // A new start is a new instance.
      const again = yield* startAgent(config(relays[0].url, local.url, { relayUrl: [relays[0].url, relays[1].url] }), logs.layer)
      expect(again.agent.instanceId).not.toBe(agent.instanceId)
      expect((yield* relays[0].nextConnection).request.headers[InstanceHeader]).toBe(again.agent.instanceId)
    }))

  it.scopedLive("one URL in front of two relays that say hello: the tunnels land on both; the logs and the state name them", () =>
    Effect.gen(function*() {
      // A round-robin balancer: tunnels alternate between iad:a and iad:b.
      const relay = yield* fakeRelay(undefined, { relayIdFor: (n) => (n % 2 === 0 ? "iad:a" : "iad:b"), refuseHeldHere: true })
      const local = yield* target
      const logs = yield* captureLogs
      const { agent } = yield* startAgent(config(relay.url, local.url), logs.layer)
      const tunnels = [yield* relay.nextConnection, yield* relay.nextConnection]
      expect(tunnels.map((t) => t.relayId).sort()).toEqual(["iad:a", "iad:b"])
      yield* eventually("both tunnels up", Effect.map(agent.connectedCount, (n) => n === 2))
      // Greeted at once: no hello wait.
      expect(tunnels[1]!.at - tunnels[0]!.at).toBeLessThan(helloWaitMs)
      for (const [i, tunnel] of tunnels.entries()) yield* expectServes(tunnel, `r${i}`)
      const up = linesOf(logs, "tunnel.connected")
      expect(up.map((line) => line.annotations.relayId).sort()).toEqual(["iad:a", "iad:b"])
      expect(up.every((line) => line.annotations.region === "iad" && line.annotations.relay === `${relay.url}/`)).toBe(true)
      const sessions = yield* agent.tunnels.get
      expect(sessions.flatMap((t) => (SessionState.$is("Connected")(t) ? [t.relayId] : [])).sort()).toEqual(["iad:a", "iad:b"])
    }))

  it.scopedLive("one URL, one relay that refuses a second tunnel with 4003: quick redials, three in a row, then the backoff; said once", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay(undefined, { relayIdFor: () => "iad:only", refuseHeldHere: true })
      const local = yield* target
      const logs = yield* captureLogs
      const before = yield* reconnects("held_here")
      const { agent } = yield* startAgent(
        config(relay.url, local.url, { backoffBaseMs: 1_000, backoffCapMs: 1_000, backoffJitter: 0 }),
        logs.layer
      )
      const first = yield* relay.nextConnection
      const refused: Array<RelayConnection> = []
      for (let i = 0; i < 5; i++) refused.push(yield* relay.nextConnection)
      for (const r of refused) expect((yield* Deferred.await(r.closed)).code).toBe(CloseCodes.HeldHere)
      const gaps = refused.slice(1).map((r, i) => r.at - refused[i]!.at)
      // Redialled within the 50 ms drain jitter (plus the dial), three times...
      for (const gap of gaps.slice(0, 3)) expect(gap).toBeLessThan(400)
      // ...then the backoff (1 s), which does not spin.
      expect(gaps[3]!).toBeGreaterThanOrEqual(950)
      expect(yield* reconnects("held_here")).toBeGreaterThanOrEqual(before + 5)

      // The first tunnel stayed up and serving; the refused ones never counted as up.
      expect(yield* Deferred.isDone(first.closed)).toBe(false)
      yield* expectServes(first, "still")
      expect(yield* agent.connectedCount).toBe(1)
      expect(linesOf(logs, "tunnel.connected").map(sessionOf)).toEqual([0])
      const said = linesOf(logs, "host.single_relay")
      expect(said.length).toBe(1)
      expect(said[0]?.annotations).toMatchObject({ tunnels: 1, wanted: 2, reason: "held_here", relays: ["iad:only"] })
      expect(linesOf(logs, "tunnel.held_here")[0]?.annotations).toMatchObject({ source: "relay", code: CloseCodes.HeldHere, session: 1 })
    }))

  it.scopedLive("a relay that greets a second tunnel with the relayId of the first: the agent closes it itself (1000, held here)", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay(undefined, { relayIdFor: () => "iad:only" })
      const local = yield* target
      const logs = yield* captureLogs
      const { agent } = yield* startAgent(config(relay.url, local.url, { backoffBaseMs: 1_000, backoffCapMs: 1_000 }), logs.layer)
      const first = yield* relay.nextConnection
      const second = yield* relay.nextConnection
      expect(yield* Deferred.await(second.closed)).toEqual({ code: CloseCodes.Normal, reason: CloseReasons.HeldHere })
      expect(yield* Deferred.isDone(first.closed)).toBe(false)
      expect(yield* agent.connectedCount).toBe(1)
      expect(linesOf(logs, "tunnel.held_here")[0]?.annotations).toMatchObject({ source: "agent", relayId: "iad:only", session: 1 })
      // And it redials within the jitter, not the backoff.
      const third = yield* relay.nextConnection
      expect(third.at - second.at).toBeLessThan(400)
    }))

  it.scopedLive("one URL, an older relay that never says hello: one tunnel only (never two replacing each other); said once", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay()
      const local = yield* target
      const logs = yield* captureLogs
      const { agent } = yield* startAgent(config(relay.url, local.url, { backoffBaseMs: 300, backoffCapMs: 300 }), logs.layer)
      const first = yield* relay.nextConnection
      yield* agent.awaitConnected
      yield* Effect.sleep("500 millis")
      expect(yield* Queue.size(relay.connections)).toBe(0)
      expect((yield* agent.tunnels.get).map((t) => t._tag)).toEqual(["Connected", "Standby"])
      expect(linesOf(logs, "host.single_relay")[0]?.annotations).toMatchObject({ tunnels: 1, wanted: 2, reason: "relay_without_hello" })

      // The tunnel ends: its own session dials again (the URL stays its own); the other stays on standby.
      first.socket.close(CloseCodes.PingTimeout, "Ping timeout")
      const second = yield* relay.nextConnection
      expect(linesOf(logs, "tunnel.connecting").map(sessionOf).every((s) => s === 0)).toBe(true)
      // Known not to greet: up at once this time, no hello wait.
      yield* eventually("up again", Effect.map(agent.connectedCount, (n) => n === 1), helloWaitMs / 2)
      yield* Effect.sleep("500 millis")
      expect(yield* Queue.size(relay.connections)).toBe(0)
      expect(yield* Deferred.isDone(second.closed)).toBe(false)
      expect(linesOf(logs, "host.single_relay").length).toBe(1)
    }))

  it.scopedLive("a drain with reconnectWithinMs on one of two tunnels: the other keeps serving; the redial comes within the window", () =>
    Effect.gen(function*() {
      const relays = [yield* fakeRelay(undefined, { relayIdFor: () => "iad:a" }), yield* fakeRelay(undefined, { relayIdFor: () => "iad:b" })] as const
      const local = yield* target
      const logs = yield* captureLogs
      const before = yield* reconnects("drain")
      const { agent } = yield* startAgent(config(relays[0].url, local.url, { relayUrl: [relays[0].url, relays[1].url] }), logs.layer)
      const [a, b] = [yield* relays[0].nextConnection, yield* relays[1].nextConnection]
      yield* eventually("both tunnels up", Effect.map(agent.connectedCount, (n) => n === 2))

      const windowMs = 800
      a.socket.send(RelayToHostCodec.encode(DrainMessage.make({ reason: "deploy", reconnectWithinMs: windowMs })))
      yield* Effect.sleep("100 millis")
      const closedAt = Date.now()
      a.socket.close(CloseCodes.Drain, "draining")
      // The other tunnel serves while the first is away.
      yield* expectServes(b, "during")
      expect(yield* agent.connectedCount).toBe(1)
      expect((yield* agent.state.get)._tag).toBe("Connected")
      // Back within the window (plus the dial), on relay a: b is held by the other session.
      const back = yield* relays[0].nextConnection
      expect(back.at - closedAt).toBeLessThan(windowMs + 300)
      expect(yield* reconnects("drain")).toBe(before + 1)
      const waited = linesOf(logs, "tunnel.reconnect_in").find((line) => line.annotations.reason === "drain")
      expect(Number(waited?.annotations.ms)).toBeLessThanOrEqual(windowMs)
      expect(waited?.annotations.session).toBe(0)
      expect(linesOf(logs, "tunnel.drain")[0]?.annotations).toMatchObject({ source: "frame", reconnectWithinMs: windowMs, session: 0 })
      expect(yield* Queue.size(relays[1].connections)).toBe(0)
      yield* eventually("both up again", Effect.map(agent.connectedCount, (n) => n === 2))
    }))

  it.scopedLive("1013 with retryAfterMs: redialled after retryAfterMs plus jitter, every time, without climbing the backoff", () =>
    Effect.gen(function*() {
      const retryAfterMs = 500
      const relay = yield* fakeRelay(undefined, {
        onOpen: (socket, n) => {
          if (n < 3) socket.close(CloseCodes.TryAgainLater, retryAfterReason(retryAfterMs))
        }
      })
      const local = yield* target
      const logs = yield* captureLogs
      const before = yield* reconnects("relay_busy")
      yield* startAgent(
        config(relay.url, local.url, { tunnels: 1, backoffBaseMs: 1_000, backoffCapMs: 4_000, backoffJitter: 0 }),
        logs.layer
      )
      const tries: Array<RelayConnection> = []
      for (let i = 0; i < 4; i++) tries.push(yield* relay.nextConnection)
      for (const [i, gap] of tries.slice(1).map((t, i) => [i, t.at - tries[i]!.at] as const)) {
        expect(gap, `gap ${i}`).toBeGreaterThanOrEqual(retryAfterMs - 5)
        expect(gap, `gap ${i}`).toBeLessThan(retryAfterMs + 250 + 300)
      }
      expect(yield* reconnects("relay_busy")).toBe(before + 3)
      expect(linesOf(logs, "tunnel.relay_busy")[0]?.annotations).toMatchObject({ code: 1013, retryAfterMs })
      // Never counted as up.
      expect(linesOf(logs, "tunnel.connected").length).toBe(0)
      // The 4th stays; when it closes 1001, the backoff's first step (1 s), not a climbed one.
      yield* Effect.sleep("100 millis")
      const closedAt = Date.now()
      tries[3]!.socket.close(CloseCodes.PingTimeout, "Ping timeout")
      const next = yield* relay.nextConnection
      expect(next.at - closedAt).toBeGreaterThanOrEqual(950)
      expect(next.at - closedAt).toBeLessThan(1_700)
    }))
})
