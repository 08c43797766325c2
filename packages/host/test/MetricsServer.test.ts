import { fakeHost, messageOf, startHostProcess, startRelayProcess, startTarget, testSecret, token, parsePrometheus, type PrometheusFamily } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer, SubscriptionRef } from "effect"
import * as net from "node:net"
import { HostAgent, MetricsServer, MetricsServerError, MetricsServerLive, SessionState, TunnelState } from "../src/index.js"

/** One sample's value; 0 when the series does not exist. Without `labels`, the sum over the family. */
const valueOf = (families: ReadonlyArray<PrometheusFamily>, name: string, labels?: Record<string, string>): number => {
  const samples = families.find((f) => f.name === name)?.metrics ?? []
  const matching = labels === undefined
    ? samples
    : samples.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
  return matching.reduce((sum, m) => sum + Number(m.value ?? 0), 0)
}

const get = (url: string, init?: RequestInit) => Effect.promise(() => fetch(url, init).then(async (res) => ({ res, text: await res.text() })))

const scrape = (port: number) =>
  Effect.gen(function*() {
    const { res, text } = yield* get(`http://127.0.0.1:${port}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4")
    return parsePrometheus(text)
  })

/** Polls `check` every 50 ms until it returns true (or fails the test after `timeoutMs`). */
const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, timeoutMs = 10_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("50 millis")
    }
  })

/** A HostAgent whose state and sessions the test sets by hand. */
const stubAgent = (initial: TunnelState, sessions: ReadonlyArray<SessionState> = [SessionState.Standby({ session: 0 })]) =>
  Effect.gen(function*() {
    const state = yield* SubscriptionRef.make(initial)
    const tunnels = yield* SubscriptionRef.make(sessions)
    const connectedCount = Effect.map(SubscriptionRef.get(tunnels), (all) => all.filter(SessionState.$is("Connected")).length)
    return {
      state,
      tunnels,
      layer: Layer.succeed(HostAgent, { state, awaitConnected: Effect.never, tunnels, connectedCount, instanceId: "test-instance" })
    }
  })

describe("host MetricsServer (in process)", () => {
  it.scopedLive("/metrics is Prometheus text of the host_ series only; /health reports the tunnels; others 404/405", () =>
    Effect.gen(function*() {
      const agent = yield* stubAgent(TunnelState.Connecting({ attempt: 3 }), [
        SessionState.Connecting({ session: 0, attempt: 3, relay: "ws://a.example/" }),
        SessionState.Standby({ session: 1 })
      ])
      const { bindHost, port } = Context.get(yield* Layer.build(MetricsServerLive({ port: 0 }).pipe(Layer.provide(agent.layer))), MetricsServer)
      expect(bindHost).toBe("127.0.0.1")
      const families = yield* scrape(port)
      expect(families.length).toBeGreaterThan(0)
      expect(families.every((f) => f.name.startsWith("host_"))).toBe(true)
      expect(families.find((f) => f.name === "host_tunnel_connected")?.type).toBe("GAUGE")
      const reconnects = families.find((f) => f.name === "host_reconnects_total")
      expect(reconnects?.type).toBe("COUNTER")
      // Every reason is there from the start, at 0 or more.
      expect(reconnects?.metrics.map((m) => m.labels?.reason).sort()).toEqual(
        [
          "auth",
          "closed_normal",
          "closed_other",
          "connect_failed",
          "connection_lost",
          "drain",
          "held_here",
          "ping_timeout",
          "relay_busy",
          "relay_error",
          "watchdog"
        ]
      )

      const down = yield* get(`http://127.0.0.1:${port}/health`)
      expect(down.res.status).toBe(200)
      expect(JSON.parse(down.text)).toEqual({ ok: true, connected: false, attempt: 3, tunnels: 0, wanted: 2, relays: [] })
      yield* SubscriptionRef.set(agent.state, TunnelState.Connected({ since: 0 }))
      yield* SubscriptionRef.set(agent.tunnels, [
        SessionState.Connected({ session: 0, since: 0, relay: "ws://a.example/", relayId: "iad:m1", region: "iad" }),
        SessionState.Connected({ session: 1, since: 1_000, relay: "ws://b.example/" })
      ])
      const up = yield* get(`http://127.0.0.1:${port}/health?x=1`)
      expect(JSON.parse(up.text)).toEqual({
        ok: true,
        connected: true,
        since: "1970-01-01T00:00:00.000Z",
        tunnels: 2,
        wanted: 2,
        relays: [
          { session: 0, relay: "ws://a.example/", relayId: "iad:m1", region: "iad", since: "1970-01-01T00:00:00.000Z" },
          { session: 1, relay: "ws://b.example/", since: "1970-01-01T00:00:01.000Z" }
        ]
      })

      expect((yield* get(`http://127.0.0.1:${port}/nope`)).res.status).toBe(404)
      const post = yield* get(`http://127.0.0.1:${port}/metrics`, { method: "POST", body: "x" })
      expect(post.res.status).toBe(405)
      expect(post.res.headers.get("allow")).toBe("GET, HEAD")
      const head = yield* get(`http://127.0.0.1:${port}/metrics`, { method: "HEAD" })
      expect(head.res.status).toBe(200)
    }))

  it.scopedLive("a port already taken fails the Layer with MetricsServerError naming it; closing the scope frees the port", () =>
    Effect.gen(function*() {
      const agent = yield* stubAgent(TunnelState.Connecting({ attempt: 1 }))
      const taken = yield* Effect.acquireRelease(
        Effect.async<net.Server>((resume) => {
          const server = net.createServer()
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const port = (taken.address() as net.AddressInfo).port
      const failed = yield* MetricsServer.pipe(
        Effect.provide(MetricsServerLive({ port }).pipe(Layer.provide(agent.layer))),
        Effect.either
      )
      expect(Either.isLeft(failed) && failed.left).toBeInstanceOf(MetricsServerError)
      expect(Either.isLeft(failed) && failed.left.message).toContain(`127.0.0.1:${port}`)

      const { port: used } = yield* MetricsServer.pipe(Effect.provide(MetricsServerLive({ port: 0 }).pipe(Layer.provide(agent.layer))))
      // The Layer above was released when its Effect ended: the port is free again.
      const refused = yield* Effect.promise(() => fetch(`http://127.0.0.1:${used}/metrics`).then(() => false, () => true))
      expect(refused).toBe(true)
    }))
})

describe("effect-relay-host --metrics-port (child processes)", () => {
  it.scopedLive("host_tunnel_connected is 1 while connected; host_reconnects_total moves when the relay replaces the tunnel and when it stops", () =>
    Effect.gen(function*() {
      const relay = yield* startRelayProcess({ env: { RELAY_AUTH_SECRET: testSecret, DRAIN_FLUSH_MS: "100" } })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      const host = yield* startHostProcess({
        // One tunnel: this test follows one tunnel's life through the gauge and the counters (several
        // tunnels, with relays that say hello or refuse a second one, are tested in HostAgent.test.ts).
        args: [
          "--relay",
          relay.ws,
          "--host-id",
          "acme:metrics",
          "--target",
          target.url,
          "--metrics-port",
          "0",
          "--backoff-base-ms",
          "1000",
          "--backoff-cap-ms",
          "1000",
          "--tunnels",
          "1"
        ],
        env: { RELAY_TOKEN: t }
      })
      const listening = host.logs.find((l) => messageOf(l) === "host.metrics_listening")!
      expect(listening.annotations).toMatchObject({ bindHost: "127.0.0.1", hostId: "acme:metrics" })
      const port = Number(listening.annotations.port)

      const first = yield* scrape(port)
      expect(valueOf(first, "host_tunnel_connected")).toBe(1)
      expect(valueOf(first, "host_reconnects_total")).toBe(0)
      expect(JSON.parse((yield* get(`http://127.0.0.1:${port}/health`)).text)).toMatchObject({ ok: true, connected: true })

      // Another tunnel for the same hostId: the relay closes the agent's with 1000 ("replaced").
      yield* fakeHost(relay.ws, "acme:metrics", t)
      yield* eventually("closed_normal counted", Effect.map(scrape(port), (f) => valueOf(f, "host_reconnects_total", { reason: "closed_normal" }) === 1))
      // Down during the backoff (1 s), then back: the agent's new tunnel replaces the fake one.
      expect(valueOf(yield* scrape(port), "host_tunnel_connected")).toBe(0)
      yield* eventually("reconnected", Effect.map(scrape(port), (f) => valueOf(f, "host_tunnel_connected") === 1))
      const connectedAgain = host.logs.filter((l) => messageOf(l) === "tunnel.connected")[1]
      expect(connectedAgain?.annotations).toMatchObject({ reconnects: 1, lastReason: "closed_normal", relay: `${relay.ws}/` })

      // The relay stops (SIGINT) and is gone: the session's end and then failed connects are counted, the gauge is 0.
      // (A drain should end the session with `drain`; `connection_lost` is accepted too, so that this test is about
      // the host's metrics, not about the relay's drain, which Drain.process.test.ts checks.)
      const beforeStop = yield* scrape(port)
      const sessionEnds = (f: ReadonlyArray<PrometheusFamily>) =>
        valueOf(f, "host_reconnects_total", { reason: "drain" }) + valueOf(f, "host_reconnects_total", { reason: "connection_lost" })
      relay.signal("SIGINT")
      yield* Effect.promise(() => relay.exited)
      yield* eventually("the session's end and a failed connect counted", Effect.map(scrape(port), (f) =>
        sessionEnds(f) === sessionEnds(beforeStop) + 1 && valueOf(f, "host_reconnects_total", { reason: "connect_failed" }) >= 1))
      const last = yield* scrape(port)
      expect(valueOf(last, "host_tunnel_connected")).toBe(0)
      expect(valueOf(last, "host_reconnects_total")).toBeGreaterThanOrEqual(3)
      expect(JSON.parse((yield* get(`http://127.0.0.1:${port}/health`)).text)).toMatchObject({ ok: true, connected: false })

      host.signal("SIGINT")
      expect((yield* Effect.promise(() => host.exited)).code).toBe(0)
      const stopped = host.logs.find((l) => messageOf(l) === "host.stopped")
      expect(stopped?.annotations).toMatchObject({ hostId: "acme:metrics", reconnectsByReason: { closed_normal: 1 } })
      // The agent's own count (logged) and the process's counter agree; more failed connects may have come since `last`.
      expect(Number(stopped?.annotations.reconnects)).toBeGreaterThanOrEqual(valueOf(last, "host_reconnects_total"))
      // The server closed with the agent.
      const refused = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then(() => false, () => true))
      expect(refused).toBe(true)
    }))
})
