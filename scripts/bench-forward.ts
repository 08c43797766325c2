/**
 * `npm run bench:forward`: what the tunnel costs, and issue 14's targets met or
 * missed. One target (the testkit's StreamTarget, a process of its own)
 * reached four ways in one run (scripts/lib/forward/systems.ts): direct,
 * through effect-relay (relay + host agent), through localtunnel (server +
 * client), and through two chained node:http proxies (the practical ceiling
 * for two extra Node processes on the path).
 * Every system is first warmed the same way under load (small GETs, then 1 MiB
 * POSTs, at c=8: --warmup seconds in all, at least one of each) so V8 has
 * compiled its hot paths before anything is measured. Then, the systems
 * alternating within each scenario:
 * - small GET at c=1 and c=32, 1 MiB POST echo at c=4 (forward/http-load.ts;
 *   wrk when it is on PATH, -t 1, else autocannon, 10 s per-request timeout);
 * - WebSocket echo round trips, direct and through effect-relay (forward/ws-echo.ts);
 * - server-sent events: each event's lag from the target's write to the client
 *   (forward/sse.ts);
 * - a --transfer-mib download and chunked upload (1 GiB), checked byte for
 *   byte, with the peak RSS growth and CPU share of every process on the path
 *   (forward/transfer.ts); one not done within --transfer-timeout is reported
 *   with the reason.
 * The targets are judged in forward/targets.ts. Every child process is killed
 * when the script ends, however it ends, and the run is cut at --deadline s.
 * With the defaults a run takes about 4-5 minutes.
 *
 * --cpu-prof DIR runs the relay and the agent under `node --cpu-prof` (profiles
 * under DIR/relay and DIR/agent, written when they exit on SIGINT at the end),
 * and --scenarios picks what to run (http,ws,sse,transfer), so one scenario can
 * be profiled alone.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { rssBytes } from "@effect-relay/testkit"
import { commit, flags, machine, repoRoot, sleep, table, workingTreeDirty, writeResult } from "./lib/bench.js"
import { fmt, httpScenarios, measureHttp, type Row, warmUp, warmupConnections } from "./lib/forward/http-load.js"
import { measureSse } from "./lib/forward/sse.js"
import {
  directSystem,
  type Reachable,
  type RelayNodeArgs,
  startEffectRelay,
  startLocaltunnel,
  startProxyChain,
  startTarget,
  type System
} from "./lib/forward/systems.js"
import { judgeTargets, targetsText } from "./lib/forward/targets.js"
import { measureTransfers } from "./lib/forward/transfer.js"
import { measureWs, wsWarmupRoundTrips } from "./lib/forward/ws-echo.js"
import { resolveTool, type Tool } from "./lib/load.js"
import { exitOnSignals } from "./lib/processes.js"

const options = flags({
  duration: 10,
  warmup: 8,
  roundtrips: 2000,
  tool: "auto",
  "sse-events": 200,
  "sse-every": 10,
  "transfer-mib": 1024,
  "transfer-timeout": 45,
  scenarios: "http,ws,sse,transfer",
  "cpu-prof": "",
  deadline: 540,
  out: path.join(repoRoot, "bench-results")
})
for (const name of ["duration", "warmup", "roundtrips", "sse-events", "sse-every", "transfer-mib", "transfer-timeout", "deadline"] as const) {
  const value = options[name]
  if (!Number.isInteger(value) || value < (name === "warmup" ? 0 : 1)) throw new Error(`--${name} must be a whole number${name === "warmup" ? "" : " >= 1"}, got ${value}`)
}
const scenarios = new Set(options.scenarios.split(","))
for (const s of scenarios) if (!["http", "ws", "sse", "transfer"].includes(s)) throw new Error(`--scenarios: unknown ${s}; known: http,ws,sse,transfer`)
const tool: Tool = resolveTool(options.tool)
exitOnSignals()
setTimeout(() => {
  console.error(`bench:forward: not done within --deadline ${options.deadline} s; stopping`)
  process.exit(1)
}, options.deadline * 1000).unref()

const profileDir = options["cpu-prof"] === "" ? undefined : path.resolve(options["cpu-prof"])
const profiled = (who: string) => (profileDir === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", path.join(profileDir, who)])
const nodeArgs: RelayNodeArgs = { relay: profiled("relay"), agent: profiled("agent") }

// --- Reporting

/** Per HTTP/WebSocket scenario: effect-relay's rate against each other system's, and the p50 it adds. */
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

const printTables = (rows: ReadonlyArray<Row>, ratios: ReturnType<typeof ratiosOf>, verdicts: ReturnType<typeof judgeTargets>) => {
  if (rows.length > 0) {
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
  }
  console.log("\nIssue 14's targets:\n" + targetsText(verdicts))
  const failing = rows.filter((r) => r.errors > 0)
  if (failing.length > 0) console.log(`warning: ${failing.map((r) => `${r.system} ${r.scenario} c=${r.connections}`).join("; ")} had errors; those figures are not comparable`)
  if (tool === "autocannon") console.log("note: autocannon records latency in whole milliseconds; HTTP p50/p99 and added p50 are that coarse (install wrk for finer figures)")
}

/** SIGINT to each process, in order, and wait (at most 15 s each) until it is gone: a --cpu-prof profile is written at exit. */
const stopGently = (pids: ReadonlyArray<number>) =>
  Effect.promise(async () => {
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGINT")
      } catch {
        continue
      }
      const deadline = Date.now() + 15_000
      while (rssBytes(pid) !== undefined && Date.now() < deadline) await sleep(100)
    }
  })

const program = Effect.gen(function*() {
  const startedAt = Date.now()
  const scratchDir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "bench-forward-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const targetPort = yield* startTarget
  const direct = directSystem(targetPort)
  const relay = yield* startEffectRelay(direct.base, nodeArgs)
  const systems: ReadonlyArray<Reachable> = [direct, relay, yield* startLocaltunnel(targetPort), yield* startProxyChain(direct.base)]
  const sha = commit()
  const dirty = workingTreeDirty()
  console.log(`tool ${tool}, warm-up ${options.warmup} s per system, ${options.duration} s per run, ${machine()}, commit ${sha}${dirty ? " (uncommitted changes)" : ""}`)
  for (const s of systems) yield* warmUp(tool, s, options.warmup, scratchDir)

  const rows = [
    ...(scenarios.has("http") ? yield* measureHttp(tool, systems, options.duration, scratchDir) : []),
    ...(scenarios.has("ws") ? yield* measureWs(systems, options.roundtrips) : [])
  ]
  const sse = scenarios.has("sse") ? yield* measureSse(systems, options["sse-events"], options["sse-every"]) : []
  const transfers = scenarios.has("transfer") ? yield* measureTransfers(systems, options["transfer-mib"] * 2 ** 20, options["transfer-timeout"]) : []
  if (profileDir !== undefined) yield* stopGently(relay.hops.map((h) => h.pid).reverse())

  const ratios = ratiosOf(rows)
  const targets = judgeTargets({ results: rows, sse, transfers })
  const file = writeResult(
    "forward",
    {
      commit: sha,
      dirty,
      date: new Date().toISOString(),
      machine: machine(),
      loadavg: os.loadavg(),
      runSeconds: Math.round((Date.now() - startedAt) / 1000),
      tool,
      latencyResolutionMs: tool === "wrk" ? 0.001 : 1,
      warmupS: options.warmup,
      warmupConnections,
      durationS: options.duration,
      roundtrips: options.roundtrips,
      wsWarmupRoundTrips,
      sseEvents: options["sse-events"],
      sseEveryMs: options["sse-every"],
      transferBytes: options["transfer-mib"] * 2 ** 20,
      transferTimeoutS: options["transfer-timeout"],
      scenarios: [...scenarios],
      cpuProfiled: profileDir !== undefined,
      hops: Object.fromEntries(systems.map((s) => [s.system, s.hops.map((h) => h.name)])),
      results: rows,
      ratios,
      sse,
      transfers,
      targets
    },
    options.out
  )
  printTables(rows, ratios, targets)
  console.log(`written: ${file}`)
})

Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
