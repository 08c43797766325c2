/**
 * Zero failed requests through a rolling restart: two relays on one Redis, three real host agent
 * processes each holding two tunnels (one URL per relay), and clients sending a request every
 * 10 ms through each relay, as a plain load balancer does (it retries an idempotent request once
 * on the other relay when its connection is refused or reset before any answer).
 */
import { freePort, messageOf, redisPrefix, redisUrl, type RelayProcess, startHostProcess, startRelayProcess, startTarget, testSecret, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"

const peerSecret = "rolling-restart-peer-secret-0123456789"
const hosts = ["acme:r1", "acme:r2", "acme:r3"]

const relayEnv = (prefix: string, machineId: string) => ({
  RELAY_AUTH_SECRET: testSecret,
  REDIS_URL: redisUrl(),
  REDIS_KEY_PREFIX: prefix,
  RELAY_PEER_SECRET: peerSecret,
  REGION: "iad",
  MACHINE_ID: machineId,
  ROUTING: "proxy"
})

interface Outcome {
  ok: number
  readonly failed: Array<string>
  /** Requests answered by the other relay after their first one refused or reset the connection. */
  retried: number
}

/**
 * A request every 10 ms through each relay (whichever process listens on its port), going round
 * the hosts, until `stop` is called.
 */
const load = (ports: ReadonlyArray<number>, t: string) => {
  const outcome: Outcome = { ok: 0, failed: [], retried: 0 }
  let running = true
  const once = async (port: number, hostId: string): Promise<string | undefined> => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/hosts/${hostId}/echo`, { headers: { authorization: `Bearer ${t}` }, signal: AbortSignal.timeout(20_000) })
      const body = await res.text()
      return res.status === 200 ? undefined : `${res.status} ${body.slice(0, 120)}`
    } catch (e) {
      const code = (e as { cause?: { code?: string } }).cause?.code
      return code === "ECONNREFUSED" || code === "ECONNRESET" || code === "UND_ERR_SOCKET" ? "connection" : String(e)
    }
  }
  const loops = ports.map(async (port, i) => {
    let n = i
    while (running) {
      const hostId = hosts[n++ % hosts.length]!
      const problem = await once(port, hostId)
      if (problem === undefined) outcome.ok++
      else if (problem === "connection") {
        // What a load balancer does with an idempotent request that got no answer byte: the other relay.
        const again = await once(ports[(i + 1) % ports.length]!, hostId)
        if (again === undefined) (outcome.ok++, outcome.retried++)
        else outcome.failed.push(`via ${port}, then the other: ${again}`)
      } else outcome.failed.push(`via ${port}: ${problem}`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  })
  return { outcome, stop: () => Effect.promise(() => ((running = false), Promise.all(loops))) }
}

/** Relays on fixed ports (they restart in place), and the host agents, two tunnels each. */
const setup = (name: string) =>
  Effect.gen(function*() {
    const { prefix } = yield* redisPrefix(name)
    const ports = [yield* freePort, yield* freePort] as const
    const start = (i: 0 | 1): Effect.Effect<RelayProcess, never, Scope.Scope> =>
      startRelayProcess({ env: relayEnv(prefix, `m${i}`), port: ports[i] })
    const relays: [RelayProcess, RelayProcess] = [yield* start(0), yield* start(1)]
    const target = yield* startTarget
    const t = yield* token({ org: "acme" })
    const agents = yield* Effect.forEach(hosts, (hostId) =>
      startHostProcess({
        args: ["--relay", relays[0].ws, "--relay", relays[1].ws, "--host-id", hostId, "--target", target.url],
        env: { RELAY_TOKEN: t },
        waitFor: null
      }), { concurrency: "unbounded" })
    yield* Effect.forEach(relays, (relay) => registrations(relay, hosts.length))
    return { ports, relays, start, t, agents, target }
  })

/** Waits until `relay` has registered `n` tunnels since it started. */
const registrations = (relay: RelayProcess, n: number) =>
  Effect.promise(async () => {
    const deadline = Date.now() + 20_000
    while (relay.logs.filter((l) => messageOf(l) === "tunnel.registered").length < n) {
      if (Date.now() > deadline) throw new Error(`relay ${relay.port} registered fewer than ${n} tunnels`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })

describe("two tunnels per host, two relays", () => {
  it.scopedLive("a rolling restart (SIGINT one relay, restart it, then the other) fails no request", () =>
    Effect.gen(function*() {
      const { ports, relays, start, t } = yield* setup("rolling")
      const traffic = load(ports, t)
      yield* Effect.sleep("300 millis")
      for (const i of [0, 1] as const) {
        relays[i].signal("SIGINT")
        expect((yield* Effect.promise(() => relays[i].exited)).code).toBe(0)
        relays[i] = yield* start(i)
        // Every host holds its two tunnels again before the next relay goes.
        yield* registrations(relays[i], hosts.length)
        yield* Effect.sleep("300 millis")
      }
      yield* traffic.stop()
      console.log(`rolling restart: ${traffic.outcome.ok} requests answered (${traffic.outcome.retried} on the other relay after a refused connection), ${traffic.outcome.failed.length} failed`)
      expect(traffic.outcome.failed).toEqual([])
      expect(traffic.outcome.ok).toBeGreaterThan(200)
    }), 90_000)

  it.scopedLive("a SIGKILL of one relay fails at most the requests in flight on it, and every host is reachable through the survivor at once", () =>
    Effect.gen(function*() {
      const { ports, relays, t } = yield* setup("sigkill")
      const traffic = load([ports[1]], t) // through the survivor only: it must never lose a host
      yield* Effect.sleep("300 millis")
      relays[0].signal("SIGKILL")
      yield* Effect.promise(() => relays[0].exited)
      const killedAt = Date.now()
      // Straight after the kill, every host answers through the survivor.
      for (const hostId of hosts) {
        const res = yield* Effect.promise(() => fetch(`${relays[1].http}/hosts/${hostId}/echo`, { headers: { authorization: `Bearer ${t}` } }))
        expect(res.status).toBe(200)
      }
      const firstRoundMs = Date.now() - killedAt
      yield* Effect.sleep("1 second")
      yield* traffic.stop()
      console.log(`sigkill: every host answered through the survivor within ${firstRoundMs} ms of the kill; ${traffic.outcome.ok} requests answered, ${traffic.outcome.failed.length} failed`)
      expect(traffic.outcome.failed).toEqual([])
    }), 90_000)

  it.scopedLive("restarting a host agent (a new instance) while requests flow fails none: they are held until it registers", () =>
    Effect.gen(function*() {
      const { agents, ports, relays, t, target } = yield* setup("agent-restart")
      const traffic = load(ports, t)
      yield* Effect.sleep("300 millis")
      const before = relays.map((relay) => relay.logs.filter((l) => messageOf(l) === "tunnel.registered").length)
      agents[0]!.signal("SIGINT")
      yield* Effect.promise(() => agents[0]!.exited)
      yield* Effect.sleep("500 millis") // nobody holds acme:r1 now: its requests are held
      yield* startHostProcess({
        args: ["--relay", relays[0].ws, "--relay", relays[1].ws, "--host-id", hosts[0]!, "--target", target.url],
        env: { RELAY_TOKEN: t }
      })
      yield* Effect.forEach([0, 1] as const, (i) => registrations(relays[i], before[i]! + 1))
      yield* Effect.sleep("300 millis")
      yield* traffic.stop()
      const metrics = yield* Effect.forEach(relays, (relay) => Effect.promise(() => fetch(`${relay.http}/metrics`).then((r) => r.text())))
      const released = metrics.reduce((n, text) => n + Number(/relay_holds_total\{outcome="released_by_event"\} (\d+)/.exec(text)?.[1] ?? 0), 0)
      console.log(`agent restart: ${traffic.outcome.ok} requests answered, ${traffic.outcome.failed.length} failed, ${released} held and released by the registration`)
      expect(traffic.outcome.failed, traffic.outcome.failed.join("\n")).toEqual([])
      expect(released).toBeGreaterThan(0)
    }), 90_000)
})
