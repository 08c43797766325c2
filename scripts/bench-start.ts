/**
 * `npm run bench:start`: start-up time and idle memory of the bins, each started as users start
 * them (`node packages/relay/bin/effect-relay.js serve`, `node packages/host/bin/effect-relay-host.js`,
 * running the bundles `npm run build` wrote; the npm script builds first):
 *
 * - relay: spawn -> first `GET /ready` 200 (the bench waits for the `relay.listening` log line,
 *   which names the port, then asks /ready until it answers 200), and RSS at idle `--settle` ms
 *   after that (VmRSS from /proc);
 * - host agent: spawn -> its `tunnel.connected` log line (one relay, started once, and a local
 *   target), and RSS with that one idle tunnel `--settle` ms after it.
 *
 * Each run starts fresh processes; `--runs` of each, median / min / max. With `--tsx 1`, the same
 * sources loaded through tsx (`node --import tsx packages/<pkg>/src/main.ts`, how the bins ran
 * before the build) are measured too, each tsx run right after the matching built run.
 *
 * Flags: --runs 5 --settle 2000 --tsx 1 --out bench-results
 */
import { startTarget, testSecret, token } from "@effect-relay/testkit"
import { Effect } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { commit, flags, machine, repoRoot, rssKB, sleep, table, workingTreeDirty, writeResult } from "./lib/bench.js"

const options = flags(
  { runs: 5, settle: 2000, tsx: 1, out: path.join(repoRoot, "bench-results") },
  process.argv.slice(2),
  "Start-up time and idle RSS of the relay and the host agent bins (see the header of scripts/bench-start.ts)."
)

// ---- processes -------------------------------------------------------------------------------

type Variant = "built" | "tsx"

const entries = {
  relay: {
    built: [path.join(repoRoot, "packages/relay/bin/effect-relay.js")],
    tsx: ["--import", "tsx", path.join(repoRoot, "packages/relay/src/main.ts")]
  },
  host: {
    built: [path.join(repoRoot, "packages/host/bin/effect-relay-host.js")],
    tsx: ["--import", "tsx", path.join(repoRoot, "packages/host/src/main.ts")]
  }
} as const

/** Ends a child that outlives the bench (SIGKILLed itself, no handler runs): see the file. */
const exitWithParent = path.join(repoRoot, "scripts/lib/exit-with-parent.cjs")

const running = new Set<ChildProcess>()
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL")
})
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) process.once(signal, () => process.exit(code))

interface Started {
  readonly child: ChildProcess
  readonly spawnedAt: number
  /** Resolves with the first JSON log line whose message is `message`, and when it arrived (ms since spawn). */
  readonly waitForLog: (message: string, timeoutMs?: number) => Promise<{ readonly line: Record<string, any>; readonly ms: number }>
  readonly stop: () => Promise<void>
}

const start = (args: ReadonlyArray<string>, env: Record<string, string>): Started => {
  const spawnedAt = performance.now()
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: {
      ...process.env,
      LOG_FORMAT: "json",
      NODE_OPTIONS: [process.env.NODE_OPTIONS, `--require ${JSON.stringify(exitWithParent)}`].filter(Boolean).join(" "),
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  running.add(child)
  child.once("exit", () => running.delete(child))
  const lines: Array<{ line: Record<string, any>; ms: number }> = []
  let output = ""
  const waiters: Array<() => void> = []
  let buffer = ""
  child.stdout!.setEncoding("utf8")
  child.stdout!.on("data", (chunk: string) => {
    const ms = performance.now() - spawnedAt
    output = (output + chunk).slice(-4000)
    buffer += chunk
    let nl: number
    while ((nl = buffer.indexOf("\n")) !== -1) {
      try {
        lines.push({ line: JSON.parse(buffer.slice(0, nl)), ms })
      } catch {
        // not a log line
      }
      buffer = buffer.slice(nl + 1)
    }
    for (const w of waiters.splice(0)) w()
  })
  child.stderr!.setEncoding("utf8")
  child.stderr!.on("data", (chunk: string) => (output = (output + chunk).slice(-4000)))
  child.once("exit", () => {
    for (const w of waiters.splice(0)) w()
  })
  const waitForLog = (message: string, timeoutMs = 30_000) =>
    new Promise<{ line: Record<string, any>; ms: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${message}" log within ${timeoutMs} ms; output: ${output}`)), timeoutMs)
      const check = () => {
        const found = lines.find((l) => l.line.message === message)
        if (found !== undefined) {
          clearTimeout(timer)
          resolve(found)
        } else if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer)
          reject(new Error(`exited (${child.exitCode ?? child.signalCode}) before "${message}"; output: ${output}`))
        } else waiters.push(check)
      }
      check()
    })
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.once("exit", () => resolve())
      child.kill("SIGKILL")
    })
  return { child, spawnedAt, waitForLog, stop }
}

/** Status of one `GET url` on a fresh connection (no keep-alive), or 0 when it failed. */
const status = (url: string) =>
  new Promise<number>((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on("error", () => resolve(0))
  })

// ---- one run of each -------------------------------------------------------------------------

const relayEnv = { RELAY_AUTH_SECRET: testSecret, REGION: "bench", MACHINE_ID: "start" }

/** A relay: spawn -> /ready 200, then its RSS after the settle time. */
const relayRun = async (variant: Variant) => {
  const relay = start([...entries.relay[variant], "serve", "--port", "0", "--bind", "127.0.0.1"], relayEnv)
  try {
    const listening = await relay.waitForLog("relay.listening")
    const url = `http://127.0.0.1:${listening.line.annotations.port}/ready`
    while ((await status(url)) !== 200) await sleep(5)
    const readyMs = performance.now() - relay.spawnedAt
    await sleep(options.settle)
    return { listeningMs: listening.ms, readyMs, rssMB: rssKB(relay.child.pid!) / 1024 }
  } finally {
    await relay.stop()
  }
}

/** A host agent: spawn -> tunnel.connected, then its RSS with that tunnel after the settle time. */
const hostRun = async (variant: Variant, relayWs: string, targetUrl: string, jwt: string, n: number) => {
  const host = start([...entries.host[variant]], {
    RELAY_URL: relayWs,
    HOST_ID: `bench:start-${variant}-${n}`,
    RELAY_TOKEN: jwt,
    TARGET_URL: targetUrl
  })
  try {
    const connected = await host.waitForLog("tunnel.connected")
    await sleep(options.settle)
    return { connectedMs: connected.ms, rssMB: rssKB(host.child.pid!) / 1024 }
  } finally {
    await host.stop()
  }
}

// ---- the bench -------------------------------------------------------------------------------

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

interface Metric {
  readonly name: string
  readonly key: "relayReadyMs" | "relayRssMB" | "hostConnectedMs" | "hostRssMB"
  readonly unit: "ms" | "MB"
  readonly target: number
}

const metrics: ReadonlyArray<Metric> = [
  { name: "relay: spawn -> /ready 200", key: "relayReadyMs", unit: "ms", target: 400 },
  { name: "relay: RSS at idle", key: "relayRssMB", unit: "MB", target: 100 },
  { name: "host agent: spawn -> tunnel.connected", key: "hostConnectedMs", unit: "ms", target: 300 },
  { name: "host agent: RSS with one tunnel", key: "hostRssMB", unit: "MB", target: 80 }
]

const program = Effect.gen(function*() {
  for (const [name, entry] of Object.entries(entries)) {
    if (!fs.existsSync(path.join(path.dirname(entry.built[0]), "../dist/main.js"))) {
      return yield* Effect.die(new Error(`packages/${name}/dist/main.js is missing: run \`npm run build\` (npm run bench:start does)`))
    }
  }
  const variants: ReadonlyArray<Variant> = options.tsx ? ["built", "tsx"] : ["built"]
  const loadBefore = os.loadavg()
  const samples: Record<Variant, Record<Metric["key"], Array<number>> & { relayListeningMs: Array<number> }> = {
    built: { relayReadyMs: [], relayRssMB: [], hostConnectedMs: [], hostRssMB: [], relayListeningMs: [] },
    tsx: { relayReadyMs: [], relayRssMB: [], hostConnectedMs: [], hostRssMB: [], relayListeningMs: [] }
  }

  for (let i = 0; i < options.runs; i++) {
    for (const variant of variants) {
      const r = yield* Effect.promise(() => relayRun(variant))
      samples[variant].relayReadyMs.push(r.readyMs)
      samples[variant].relayListeningMs.push(r.listeningMs)
      samples[variant].relayRssMB.push(r.rssMB)
    }
  }

  // One built relay and one target for every host run.
  const target = yield* startTarget
  const relay = start([...entries.relay.built, "serve", "--port", "0", "--bind", "127.0.0.1"], relayEnv)
  yield* Effect.addFinalizer(() => Effect.promise(relay.stop))
  const port = (yield* Effect.promise(() => relay.waitForLog("relay.listening"))).line.annotations.port
  const jwt = yield* token({ org: "bench" })
  for (let i = 0; i < options.runs; i++) {
    for (const variant of variants) {
      const h = yield* Effect.promise(() => hostRun(variant, `ws://127.0.0.1:${port}`, target.url, jwt, i))
      samples[variant].hostConnectedMs.push(h.connectedMs)
      samples[variant].hostRssMB.push(h.rssMB)
    }
  }

  const round = (n: number) => +n.toFixed(1)
  const results = variants.flatMap((variant) =>
    metrics.map((m) => {
      const values = samples[variant][m.key].map(round)
      const med = round(median(values))
      return {
        metric: m.name,
        variant,
        unit: m.unit,
        values,
        median: med,
        min: Math.min(...values),
        max: Math.max(...values),
        target: m.target,
        met: variant === "built" ? med <= m.target : null
      }
    })
  )
  const bundleKB = Object.fromEntries(Object.keys(entries).map((name) => {
    const dist = path.join(repoRoot, `packages/${name}/dist/main.js`)
    return [name, { js: Math.round(fs.statSync(dist).size / 1024), map: Math.round(fs.statSync(`${dist}.map`).size / 1024) }]
  }))
  const result = {
    commit: commit(),
    dirty: workingTreeDirty(),
    date: new Date().toISOString(),
    machine: machine(),
    runs: options.runs,
    settleMs: options.settle,
    loadavgBefore: loadBefore.map((l) => +l.toFixed(2)),
    loadavgAfter: os.loadavg().map((l) => +l.toFixed(2)),
    bundleKB,
    relayListeningMs: Object.fromEntries(variants.map((v) => [v, samples[v].relayListeningMs.map(round)])),
    results
  }
  const file = writeResult("start", result, options.out)
  console.log(table(results.map((r) => ({
    metric: r.metric,
    variant: r.variant,
    median: `${r.median} ${r.unit}`,
    min: r.min,
    max: r.max,
    target: r.variant === "built" ? `<= ${r.target} ${r.unit}` : "",
    met: r.met === null ? "" : r.met ? "yes" : "NO"
  }))))
  console.log(`${options.runs} runs each, RSS ${options.settle} ms after ready; load average before ${result.loadavgBefore.join(" ")}, after ${result.loadavgAfter.join(" ")}\nwritten: ${file}`)
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
