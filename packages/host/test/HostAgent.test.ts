import { CloseCodes, DrainMessage, HttpRequest, Ping, RelayToHostCodec } from "@effect-relay/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Metric } from "effect"
import * as net from "node:net"
import { tunnelConnected } from "../src/index.js"
import { captureLogs, config, fakeRelay, linesOf, nextFrame, reconnects, startAgent, target, token } from "./agentSupport.js"

describe("HostAgentLive (fake relay over real WebSockets)", () => {
  it.scopedLive("dials /tunnel with the hostId and bearer token, answers pings and forwards HTTP", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay()
      const local = yield* target
      const logs = yield* captureLogs
      const { agent, stop } = yield* startAgent(config(relay.url, local.url), logs.layer)
      const tunnel = yield* relay.nextConnection
      expect(tunnel.request.url).toBe("/tunnel?hostId=acme%3Alaptop")
      expect(tunnel.request.headers.authorization).toBe(`Bearer ${token}`)
      const connected = yield* agent.awaitConnected
      expect(connected._tag).toBe("Connected")
      expect((yield* Metric.value(tunnelConnected)).value).toBe(1)

      tunnel.socket.send(RelayToHostCodec.encode(Ping.make({ ts: 42 })))
      expect(yield* nextFrame(tunnel)).toMatchObject({ _tag: "pong", ts: 42 })

      tunnel.socket.send(RelayToHostCodec.encode(HttpRequest.make({ id: "q1", method: "GET", path: "/x?y=1", headers: {} })))
      const response = yield* nextFrame(tunnel)
      expect(response).toMatchObject({ _tag: "http:response", id: "q1", status: 200, body: "target saw GET /x?y=1" })

      // Stopping the agent closes the tunnel with 1000.
      yield* stop
      expect((yield* Deferred.await(tunnel.closed)).code).toBe(CloseCodes.Normal)
      expect((yield* Metric.value(tunnelConnected)).value).toBe(0)

      // Logs carry hostId and the relay URL, never the token.
      const connectedLine = logs.lines.find((line) => JSON.stringify(line.message).includes("tunnel.connected"))
      expect(connectedLine?.annotations).toMatchObject({ hostId: "acme:laptop", relay: `${relay.url}/` })
      expect(logs.lines.some((line) => line.text.includes(token))).toBe(false)
    }))

  it.scopedLive("each connect logs the agent's own counters; every line of an attempt names the hostId and the relay", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay()
      const local = yield* target
      const logs = yield* captureLogs
      const before = yield* reconnects("ping_timeout")
      const { agent } = yield* startAgent(
        config(`${relay.url}?token=leak#frag`, local.url, { backoffBaseMs: 300, backoffCapMs: 300, backoffJitter: 0 }),
        logs.layer
      )
      const first = yield* relay.nextConnection
      yield* agent.awaitConnected
      expect((yield* Metric.value(tunnelConnected)).value).toBe(1)
      first.socket.close(CloseCodes.PingTimeout, "Ping timeout")
      yield* Deferred.await(first.closed)
      // Down at once: the gauge and the state do not wait for the next attempt.
      yield* Effect.sleep("100 millis")
      expect((yield* Metric.value(tunnelConnected)).value).toBe(0)
      expect((yield* agent.state.get)._tag).toBe("Connecting")
      yield* relay.nextConnection
      yield* agent.awaitConnected
      expect(yield* reconnects("ping_timeout")).toBe(before + 1)

      const relayShown = `${relay.url}/`
      const [firstUp, secondUp] = linesOf(logs, "tunnel.connected")
      expect(firstUp?.annotations).toMatchObject({ hostId: "acme:laptop", relay: relayShown, attempt: 1, reconnects: 0, reconnectsByReason: {} })
      expect(firstUp?.annotations.lastReason).toBeUndefined()
      expect(secondUp?.annotations).toMatchObject({
        hostId: "acme:laptop",
        relay: relayShown,
        attempt: 1,
        reconnects: 1,
        lastReason: "ping_timeout",
        reconnectsByReason: { ping_timeout: 1 }
      })
      expect(secondUp?.annotations.downMs).toBeGreaterThanOrEqual(250)
      const closed = linesOf(logs, "tunnel.closed")[0]
      expect(closed?.annotations).toMatchObject({ hostId: "acme:laptop", relay: relayShown, code: CloseCodes.PingTimeout })
      expect(linesOf(logs, "tunnel.reconnect_in")[0]?.annotations).toMatchObject({ hostId: "acme:laptop", reason: "ping_timeout" })
      // The query string (where a token could hide) never reaches a log line.
      expect(logs.lines.some((line) => line.text.includes("leak") || line.text.includes(token))).toBe(false)
    }))

  it.scopedLive("a drain frame: the tunnel stays open for the relay's 4001, then the agent reconnects within the drain jitter, not the backoff", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay()
      const local = yield* target
      const logs = yield* captureLogs
      const before = yield* reconnects("drain")
      const { agent } = yield* startAgent(config(relay.url, local.url), logs.layer)
      const first = yield* relay.nextConnection
      yield* agent.awaitConnected
      first.socket.send(RelayToHostCodec.encode(DrainMessage.make({ reason: "deploy" })))
      yield* Effect.sleep("200 millis")
      expect(first.socket.readyState).toBe(first.socket.OPEN) // the host waits for the relay to close
      const closedAt = Date.now()
      first.socket.close(CloseCodes.Drain, "draining")
      expect((yield* Deferred.await(first.closed)).code).toBe(CloseCodes.Drain)
      const second = yield* relay.nextConnection
      // Backoff base is 2 s: a reconnect this fast can only be the drain path.
      expect(second.at - closedAt).toBeLessThan(1_000)
      expect(yield* reconnects("drain")).toBe(before + 1)
      expect(logs.lines.some((line) => JSON.stringify(line.message).includes("tunnel.drain"))).toBe(true)
    }))

  it.scopedLive("several relays, one tunnel: after a drain from one, the reconnect goes to another", () =>
    Effect.gen(function*() {
      const relays = [yield* fakeRelay(), yield* fakeRelay()]
      const local = yield* target
      const logs = yield* captureLogs
      yield* startAgent(config(relays[0]!.url, local.url, { relayUrl: `${relays[0]!.url},${relays[1]!.url}`, tunnels: 1 }), logs.layer)
      const next = Effect.raceAll(relays.map((r, i) => Effect.map(r.nextConnection, (c) => [i, c] as const)))
      let [at, connection] = yield* next
      for (let round = 0; round < 6; round++) {
        connection.socket.close(CloseCodes.Drain, "draining")
        const [nextAt, nextConnection] = yield* next
        expect(nextAt).not.toBe(at)
        ;[at, connection] = [nextAt, nextConnection]
      }
    }))

  it.scopedLive("after a drain, refused connects are retried on the short cadence, not the backoff", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay()
      const local = yield* target
      const logs = yield* captureLogs
      yield* startAgent(config(relay.url, local.url, { drainRetryMs: 100 }), logs.layer)
      const first = yield* relay.nextConnection
      const connectFailures = () => logs.lines.filter((l) => JSON.stringify(l.message).includes("tunnel.connect_failed")).length
      // The relay goes away in place: drain, then nothing listens for a while.
      yield* relay.refuseFor("1200 millis")
      const closedAt = Date.now()
      first.socket.close(CloseCodes.Drain, "draining")
      const second = yield* relay.nextConnection
      // Refused for 1.2 s: several fast retries, and back within the short cadence (a 2 s backoff would take longer).
      expect(second.at - closedAt).toBeGreaterThanOrEqual(1_150)
      expect(second.at - closedAt).toBeLessThan(1_700)
      expect(connectFailures()).toBeGreaterThanOrEqual(5)
    }))

  it.scopedLive("a close with 4001 reconnects at once; a close with 1001 waits for the backoff", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay()
      const local = yield* target
      const logs = yield* captureLogs
      const beforePing = yield* reconnects("ping_timeout")
      yield* startAgent(config(relay.url, local.url, { backoffBaseMs: 400, backoffCapMs: 400, backoffJitter: 0 }), logs.layer)
      const first = yield* relay.nextConnection
      const drainedAt = Date.now()
      first.socket.close(CloseCodes.Drain, "draining")
      const second = yield* relay.nextConnection
      expect(second.at - drainedAt).toBeLessThan(300)
      const timedOutAt = Date.now()
      second.socket.close(CloseCodes.PingTimeout, "Ping timeout")
      const third = yield* relay.nextConnection
      expect(third.at - timedOutAt).toBeGreaterThanOrEqual(380)
      expect(yield* reconnects("ping_timeout")).toBe(beforePing + 1)
    }))

  it.scopedLive("a relay that refuses the token: logged clearly, retried on the backoff, token never logged", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay(401)
      const logs = yield* captureLogs
      const before = yield* reconnects("auth")
      const { agent } = yield* startAgent(
        config(relay.url, "http://127.0.0.1:1", { backoffBaseMs: 50, backoffCapMs: 50 }),
        logs.layer
      )
      yield* Effect.sleep("300 millis")
      expect(yield* reconnects("auth")).toBeGreaterThanOrEqual(before + 2)
      const state = yield* agent.state.get
      expect(state._tag).toBe("Connecting")
      expect(state._tag === "Connecting" && state.attempt).toBeGreaterThanOrEqual(2)
      const refused = logs.lines.find((line) => JSON.stringify(line.message).includes("tunnel.connect_refused"))
      expect(refused?.annotations).toMatchObject({ status: 401 })
      expect(logs.lines.some((line) => line.text.includes(token))).toBe(false)
    }))

  it.scopedLive("a close with 1008 is logged as an auth failure with its reason and climbs the backoff", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay()
      relay.wss.on("connection", (socket) => socket.close(CloseCodes.Policy, "Forbidden"))
      const logs = yield* captureLogs
      const before = yield* reconnects("auth")
      yield* startAgent(config(relay.url, "http://127.0.0.1:1", { backoffBaseMs: 50, backoffCapMs: 50 }), logs.layer)
      const first = yield* relay.nextConnection
      expect((yield* Deferred.await(first.closed)).code).toBe(CloseCodes.Policy)
      yield* relay.nextConnection
      expect(yield* reconnects("auth")).toBeGreaterThanOrEqual(before + 1)
      const closed = logs.lines.find((line) => JSON.stringify(line.message).includes("tunnel.closed"))
      expect(closed?.annotations).toMatchObject({ code: 1008, reason: "Forbidden" })
      expect(String(closed?.annotations.hint)).toContain("RELAY_TOKEN")
    }))

  it.scopedLive("a relay that never answers the upgrade: the connect times out and is retried", () =>
    Effect.gen(function*() {
      // Accepts TCP and never says a word.
      const sockets: Array<net.Socket> = []
      const server = yield* Effect.acquireRelease(
        Effect.async<net.Server>((resume) => {
          const server = net.createServer((socket) => sockets.push(socket))
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
      )
      const port = (server.address() as net.AddressInfo).port
      const logs = yield* captureLogs
      const before = yield* reconnects("connect_failed")
      yield* startAgent(
        config(`ws://127.0.0.1:${port}`, "http://127.0.0.1:1", { connectTimeoutMs: 200, backoffBaseMs: 20, backoffCapMs: 20 }),
        logs.layer
      )
      yield* Effect.sleep("50 millis")
      expect(yield* reconnects("connect_failed")).toBe(before)
      // 200 + 20 + 200 ms: two timed-out attempts.
      yield* Effect.sleep("650 millis")
      expect(yield* reconnects("connect_failed")).toBeGreaterThanOrEqual(before + 2)
    }))

  it.scopedLive("a silent relay: the watchdog closes the tunnel with 4002 and the agent reconnects", () =>
    Effect.gen(function*() {
      const relay = yield* fakeRelay()
      const logs = yield* captureLogs
      yield* startAgent(
        config(relay.url, "http://127.0.0.1:1", { watchdogMs: 400, backoffBaseMs: 50, backoffCapMs: 50 }),
        logs.layer
      )
      const first = yield* relay.nextConnection
      // A frame keeps it alive past the first 400 ms.
      yield* Effect.sleep("250 millis")
      first.socket.send(RelayToHostCodec.encode(Ping.make({ ts: 1 })))
      yield* Effect.sleep("250 millis")
      expect(yield* Deferred.isDone(first.closed)).toBe(false)
      expect((yield* Deferred.await(first.closed)).code).toBe(CloseCodes.HostWatchdog)
      const second = yield* relay.nextConnection
      expect(second.request.url).toBe("/tunnel?hostId=acme%3Alaptop")
    }))
})
