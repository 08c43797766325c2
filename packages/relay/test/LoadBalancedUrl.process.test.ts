/**
 * One URL in front of two relays (a platform's proxy picks one at random): a host agent with that
 * one URL still ends up with its two tunnels on the two relays, told so by the relays' hellos and
 * moved by `fly-replay: elsewhere=true` (fly-replay routing) or close 4003 (proxy routing).
 */
import { messageOf, redisPrefix, redisUrl, type RelayProcess, startFront, startHostProcess, startRelayProcess, startTarget, testSecret, token } from "@effect-relay/testkit"
import { expect, it } from "@effect/vitest"
import { Effect } from "effect"

const relayEnv = (prefix: string, machineId: string, routing: string) => ({
  RELAY_AUTH_SECRET: testSecret,
  REDIS_URL: redisUrl(),
  REDIS_KEY_PREFIX: prefix,
  RELAY_PEER_SECRET: "load-balanced-peer-secret-0123456789",
  REGION: "iad",
  MACHINE_ID: machineId,
  ROUTING: routing
})

/** Whether `relay` currently holds a registered tunnel of `hostId` (registered, and not closed since). */
const holds = (relay: RelayProcess, hostId: string) => {
  const events = relay.logs.filter((l) => l.annotations.hostId === hostId && ["tunnel.registered", "tunnel.closed", "tunnel.replaced"].includes(messageOf(l)))
  return events.length > 0 && messageOf(events.at(-1)!) === "tunnel.registered"
}

for (const routing of ["fly-replay", "proxy"] as const) {
  it.scopedLive(`${routing} routing: an agent given one load-balanced URL holds one tunnel on each relay`, () =>
    Effect.gen(function*() {
      const { prefix } = yield* redisPrefix(`front-${routing}`)
      const relays = yield* Effect.all([
        startRelayProcess({ env: relayEnv(prefix, "a", routing) }),
        startRelayProcess({ env: relayEnv(prefix, "b", routing) })
      ], { concurrency: 2 })
      const front = yield* startFront(relays.map((r) => r.port), { honourFlyReplay: routing === "fly-replay" })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      const hostId = `acme:front-${routing}`
      const agent = yield* startHostProcess({
        args: ["--relay", front.ws, "--host-id", hostId, "--target", target.url, "--tunnels", "2"],
        env: { RELAY_TOKEN: t }
      })
      const deadline = Date.now() + 30_000
      const connectedTo = () => new Set(agent.logs.filter((l) => messageOf(l) === "tunnel.connected").map((l) => l.annotations.relayId).slice(-2))
      // Both relays registered a tunnel, and the agent heard both hellos (it logs a tunnel once its relay greeted it).
      while (!(relays.every((relay) => holds(relay, hostId)) && connectedTo().size === 2) && Date.now() < deadline) yield* Effect.sleep("50 millis")
      const refused = relays.reduce((n, relay) => n + relay.logs.filter((l) => messageOf(l) === "tunnel.refused" && l.annotations.hostId === hostId).length, 0)
      console.log(`${routing} behind one URL: a tunnel on each relay after ${front.replays()} replays elsewhere and ${refused} refusals (4003)`)
      expect(relays.map((relay) => holds(relay, hostId))).toEqual([true, true])
      expect(agent.logs.filter((l) => messageOf(l) === "tunnel.connected").map((l) => l.annotations.relayId).sort().slice(-2)).toEqual(["iad:a", "iad:b"])
      // Both relays serve the host, each through its own tunnel.
      for (const relay of relays) {
        const res = yield* Effect.promise(() => fetch(`${relay.http}/hosts/${hostId}/echo`, { headers: { authorization: `Bearer ${t}` } }))
        expect(res.status).toBe(200)
      }
    }), 60_000)
}

