/**
 * `npm run bench:http-stack`: what serving HTTP and WebSockets through @effect/platform would cost
 * the relay, against the raw node:http + ws it uses (packages/relay/src/http/RelayServer.ts,
 * packages/protocol/src/Transport.ts). Three parts, each server a process of its own (the load
 * generator never shares its event loop), bundled with esbuild first and run with node alone, as
 * the relay's bin runs (scripts/lib/http-stack/ holds the servers):
 *
 * 1. HTTP (--http): `node` (plain node:http), `node-fiber` (node:http, each request an Effect
 *    fiber through a FiberSet runtime, as the relay does), `platform` (an HttpRouter served by
 *    NodeHttpServer, everything at its defaults, the per-request tracing span included) and, when
 *    asked for, `platform-notrace` (the same with `HttpMiddleware.withTracerDisabledWhen`).
 *    Routes: GET /small (a ~100-byte JSON answer) and POST /body (reads a 64 KiB body, answers
 *    its length). Per route: --warmup s at c=32, then --duration s at c=32 (req/s; server CPU per
 *    request from /proc/<pid>/stat) and --duration s at c=1 (p50 / p99). Server RSS after its
 *    runs. --reps fresh processes per stack, the stacks' order rotated per repetition; medians.
 * 2. WebSockets (--ws): `ws-transport` (node:http upgrade -> ws WebSocketServer -> the protocol
 *    package's Transport.fromWebSocket, in a FiberSet fiber, as the relay does), `platform-socket`
 *    (HttpRouter route -> HttpServerRequest.upgrade -> Socket.runRaw echo) and, for reference,
 *    `ws-plain` (ws alone, no Effect). Per fresh server: echo round trips on one connection
 *    (--wsWarmup untimed, then --messages timed, sequential), then --idle idle connections opened
 *    from a separate process: server RSS and heap after a forced GC (node --expose-gc, asked over
 *    IPC), before and after, per connection. --reps each, rotated; medians.
 * 3. Start-up: `node --input-type=module -e` dynamically importing each stack's modules from
 *    node_modules, --importRuns each (rotated; 0 skips): import time in-process, spawn to exit.
 *
 * HTTP load by wrk when it is on PATH (-t 1), else autocannon (1 ms latency resolution). 127.0.0.1
 * only; everything sequential. The machine is shared, so every timed measurement (each HTTP run,
 * each echo series, each import) first waits for one second in which the machine, this bench
 * idle, is under --quietBelow % busy (at most --quietWait s), and counts what other people's
 * processes took during it ("others %": the machine's busy time less the server's, this process's
 * and wrk's, in percent of one core, give or take a few tens); over --maxOthers % it is measured
 * again, at most --retries more times, and the last attempt is reported. Waiting and repeating
 * together stop after --extraBudget s per run (then it measures as it finds the machine). Load
 * averages are recorded too. With the defaults a run takes about 7.5 minutes, at most about 8.5.
 * Writes bench-results/http-stack-<timestamp>.json.
 *
 * Flags: --duration 8 --warmup 3 --reps 3 --idle 2000 --messages 1000 --wsWarmup 200 --importRuns 5
 *        --quietBelow 20 --quietWait 10 --maxOthers 40 --retries 1 --extraBudget 45
 *        --http node,node-fiber,platform[,platform-notrace]|none
 *        --ws ws-transport,platform-socket,ws-plain|none  --tool auto|wrk|autocannon  --out bench-results
 */
import * as esbuild from "esbuild"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import WebSocket from "ws"
import { commit, cpuBusyPercent, cpuTimes, flags, machine, percentile, repoRoot, rssKB, sleep, table, workingTreeDirty, writeResult } from "./lib/bench.js"
import { resolveTool, runLoad, type Tool } from "./lib/load.js"
import { type Child, exitOnSignals, spawnChild, tsx } from "./lib/processes.js"
import { wsRoundTrip } from "./lib/ws-round-trip.js"

const options = flags(
  {
    duration: 8,
    warmup: 3,
    reps: 3,
    idle: 2000,
    messages: 1000,
    wsWarmup: 200,
    importRuns: 5,
    quietBelow: 20,
    quietWait: 10,
    maxOthers: 40,
    retries: 1,
    extraBudget: 45,
    http: "node,node-fiber,platform",
    ws: "ws-transport,platform-socket,ws-plain",
    tool: "auto",
    out: path.join(repoRoot, "bench-results")
  },
  process.argv.slice(2),
  "node:http + ws against @effect/platform's HttpServer / HttpRouter / Socket (see the header of scripts/bench-http-stack.ts)."
)
for (const name of ["duration", "warmup", "reps", "idle", "messages", "wsWarmup", "importRuns", "quietBelow", "quietWait", "maxOthers", "retries", "extraBudget"] as const) {
  const least = ["duration", "warmup", "reps", "idle", "messages"].includes(name) ? 1 : 0
  if (!Number.isInteger(options[name]) || options[name] < least) throw new Error(`--${name} must be a whole number >= ${least}, got ${options[name]}`)
}
const knownStacks = { http: ["node", "node-fiber", "platform", "platform-notrace"], ws: ["ws-transport", "platform-socket", "ws-plain"] }
/** A comma-separated list of stacks (`none` for none), each one of `known`. */
const stackList = (flag: "http" | "ws"): ReadonlyArray<string> => {
  const names = options[flag] === "none" ? [] : options[flag].split(",").map((s) => s.trim()).filter((s) => s !== "")
  const unknown = names.filter((n) => !knownStacks[flag].includes(n))
  if (unknown.length > 0) throw new Error(`--${flag}: unknown ${unknown.join(", ")}; known: ${knownStacks[flag].join(", ")} (or none)`)
  return names
}
const httpStacks = stackList("http")
const wsStacks = stackList("ws")
const tool: Tool = resolveTool(options.tool)
exitOnSignals()

const serversDir = path.join(repoRoot, "scripts/lib/http-stack")
const clockTicks = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim())
const loadavg = () => os.loadavg().map((l) => +l.toFixed(2))

const median = (values: ReadonlyArray<number>): number => {
  const finite = values.filter(Number.isFinite)
  if (finite.length === 0) return NaN
  const sorted = [...finite].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
const round = (n: number, digits: number) => (Number.isFinite(n) ? +n.toFixed(digits) : NaN)
/** The stacks' order for repetition `rep`: rotated, so no stack always runs first or last. */
const rotated = <T>(items: ReadonlyArray<T>, rep: number): Array<T> => items.map((_, i) => items[(i + rep) % items.length]!)

// ---- processes -------------------------------------------------------------------------------

/** Bundles every server entry (one file each, node_modules inlined) as scripts/build.mjs bundles the bins. */
const bundleServers = async (outdir: string) => {
  const entries = fs.readdirSync(serversDir).filter((f) => f.endsWith("-server.ts"))
  const result = await esbuild.build({
    absWorkingDir: repoRoot,
    entryPoints: entries.map((f) => path.join(serversDir, f)),
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["bufferutil", "utf-8-validate"],
    banner: { js: "import { createRequire as __createRequire } from \"node:module\"; const require = __createRequire(import.meta.url);" },
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: "none",
    logLevel: "warning"
  })
  if (result.errors.length > 0) throw new Error(`esbuild: ${result.errors.map((e) => e.text).join("; ")}`)
  return Object.fromEntries(entries.map((f) => {
    const file = path.join(outdir, f.replace(/\.ts$/, ".mjs"))
    return [f.replace(/-server\.ts$/, ""), { file, kB: Math.round(fs.statSync(file).size / 1024) }]
  }))
}

type Bundles = Awaited<ReturnType<typeof bundleServers>>

interface Server {
  readonly child: Child
  readonly port: number
  /** Spawn to its ready line, in ms (node start, module load and listen). */
  readonly readyMs: number
  /** NODE_OPTIONS and node's flags as the server saw them (no loader may be among them). */
  readonly nodeOptions: string
}

const startServer = async (bundles: Bundles, stack: string): Promise<Server> => {
  const [bundle, extra] = stack === "platform-notrace" ? ["platform", ["--tracer", "off"]] : [stack, []]
  const file = bundles[bundle]?.file
  if (file === undefined) throw new Error(`no server bundle for ${stack}`)
  const child = spawnChild({ name: stack, args: ["--expose-gc", file, ...extra], ipc: true })
  const line = await child.firstJson<{ port: number; stack: string; nodeOptions: string; execArgv: Array<string> }>(20_000, (v) => v.ready === true)
  if (line.stack !== stack) throw new Error(`started ${stack}, it says it is ${line.stack}`)
  return { child, port: line.port, readyMs: Date.now() - child.spawnedAt, nodeOptions: `${line.nodeOptions} | ${line.execArgv.join(" ")}` }
}

/** Fields of /proc/<pid>/stat after the command name: [0] is field 3 (state), so utime (14) is [11]. */
const statFields = (pid: number | "self"): Array<number> => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number)
}
/** utime + stime of a process so far, in clock ticks. */
const cpuTicks = (pid: number): number => {
  const f = statFields(pid)
  return f[11]! + f[12]!
}
/** This process's utime + stime plus its reaped children's (cutime + cstime: wrk once it exited), in ticks. */
const ownTicks = (): number => {
  const f = statFields("self")
  return f[11]! + f[12]! + f[13]! + f[14]!
}
/**
 * user + nice + system + irq + softirq ticks of the whole machine. The kernel charges a tick spent
 * in an interrupt to the interrupted process's stime as well as to irq / softirq here (loopback
 * traffic is mostly softirq), so these are left in; idle, iowait and steal are not.
 */
const machineTicks = (): number => {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  return f[0]! + f[1]! + f[2]! + f[5]! + f[6]!
}

/**
 * What other people's processes took while this bench measured: the machine's busy time less the
 * server's, this process's and its reaped children's (wrk). `othersPercent`: of one core. Process
 * times and the machine's are counted differently (ticks against scheduler time): on this kind of
 * VM the figure wanders by a few tens of percent either way over an 8 s run, more over the short
 * echo series. A contamination flag, not a measurement.
 */
const othersMeter = (serverPid: number | undefined) => {
  const read = () => ({ machine: machineTicks(), server: serverPid === undefined ? 0 : cpuTicks(serverPid), own: ownTicks(), at: performance.now() })
  const from = read()
  return {
    stop: () => {
      const to = read()
      const seconds = (to.at - from.at) / 1000
      const server = (to.server - from.server) / clockTicks
      const others = (to.machine - from.machine - (to.server - from.server) - (to.own - from.own)) / clockTicks
      // Tick counts are read at slightly different moments: a few ticks either way are noise.
      return { serverCpuS: server, othersPercent: Math.round((100 * others) / seconds) }
    }
  }
}

/** Time spent waiting for quiet (beyond each first second) and on repeated attempts, in ms: bounded by --extraBudget. */
let extraSpentMs = 0
const budgetLeft = () => extraSpentMs < options.extraBudget * 1000

/**
 * Waits (at most --quietWait s, and only while the --extraBudget lasts) for one second in which
 * the machine, this bench idle, is less than --quietBelow % busy; returns how long it waited and
 * the last second's busy share.
 */
const quiet = async () => {
  const started = Date.now()
  for (;;) {
    const from = cpuTimes()
    await sleep(1000)
    const busy = cpuBusyPercent(from, cpuTimes())
    const waited = Date.now() - started
    if (busy < options.quietBelow || waited >= options.quietWait * 1000 || !budgetLeft()) {
      extraSpentMs += Math.max(0, waited - 1000)
      return { waitedMs: waited, busyPercent: busy }
    }
  }
}

/**
 * One timed measurement, repeated (at most --retries more times) while others took more than
 * --maxOthers % of a core during it; each attempt after a `quiet` second. Returns the last
 * attempt (the one reported) and every attempt's contamination.
 */
const measured = async <T>(serverPid: number | undefined, what: string, measure: () => Promise<T>) => {
  const attempts: Array<{ waitedMs: number; busyBeforePercent: number; othersPercent: number }> = []
  for (;;) {
    const gate = await quiet()
    const meter = othersMeter(serverPid)
    const startedAt = Date.now()
    const value = await measure()
    const { serverCpuS, othersPercent } = meter.stop()
    if (attempts.length > 0) extraSpentMs += Date.now() - startedAt
    attempts.push({ waitedMs: gate.waitedMs, busyBeforePercent: gate.busyPercent, othersPercent })
    if (othersPercent <= options.maxOthers || attempts.length > options.retries || !budgetLeft()) return { value, serverCpuS, othersPercent, attempts }
    console.log(`  (${what}: others took ${othersPercent}% of a core during it; again)`)
  }
}

/** Peak RSS of a process (VmHWM), in kB. */
const peakRssKB = (pid: number): number => {
  const match = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  return match ? Number(match[1]) : NaN
}

/** The server's memory after a full GC (IPC "memory"), and its RSS from /proc right after. */
const memoryAfterGc = async (server: Server) => {
  const reply = server.child.waitForMessage("memory", (m) => {
    const value = m as { memory?: NodeJS.MemoryUsage; gc?: boolean }
    return value.memory !== undefined ? value : undefined
  }, 10_000)
  server.child.send({ type: "memory" })
  const { memory, gc } = await reply
  if (gc !== true) throw new Error(`${server.child.name} did not run with --expose-gc`)
  await sleep(200)
  return { rssKB: rssKB(server.child.pid), heapUsedKB: Math.round(memory!.heapUsed / 1024), externalKB: Math.round(memory!.external / 1024) }
}

// ---- 1. HTTP ---------------------------------------------------------------------------------

const body64k = Buffer.alloc(64 * 1024, 97)

interface Route {
  readonly name: "GET /small" | "POST /body 64 KiB"
  readonly path: string
  readonly body?: Buffer
}
const routes: ReadonlyArray<Route> = [
  { name: "GET /small", path: "/small" },
  { name: "POST /body 64 KiB", path: "/body", body: body64k }
]

interface HttpRun {
  readonly stack: string
  readonly rep: number
  readonly route: Route["name"]
  readonly connections: number
  readonly reqPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly errors: number
  /** Server CPU (user + system) per request, in microseconds: CPU seconds / (req/s x duration). */
  readonly cpuUsPerRequest: number
  /** Other people's CPU during the reported attempt, in percent of one core. */
  readonly othersPercent: number
  readonly attempts: ReadonlyArray<{ waitedMs: number; busyBeforePercent: number; othersPercent: number }>
}

interface HttpProcess {
  readonly stack: string
  readonly rep: number
  readonly readyMs: number
  readonly rssIdleKB: number
  readonly rssAfterKB: number
  readonly peakRssKB: number
  readonly warmups: ReadonlyArray<{ route: string; reqPerSec: number; errors: number }>
}

/** The answers are what every stack must answer, before anything is timed. */
const checkAnswers = async (base: string, stack: string) => {
  const small = await fetch(`${base}/small`)
  const smallText = await small.text()
  if (small.status !== 200 || JSON.parse(smallText).ok !== true) throw new Error(`${stack}: GET /small answered ${small.status} ${smallText}`)
  const posted = await fetch(`${base}/body`, { method: "POST", body: body64k, headers: { "content-type": "application/octet-stream" } })
  const postedText = await posted.text()
  if (posted.status !== 200 || JSON.parse(postedText).length !== body64k.length) throw new Error(`${stack}: POST /body answered ${posted.status} ${postedText}`)
  return smallText.length
}

const measureHttpStack = async (bundles: Bundles, stack: string, rep: number, scratchDir: string) => {
  const server = await startServer(bundles, stack)
  const runs: Array<HttpRun> = []
  try {
    const base = `http://127.0.0.1:${server.port}`
    const smallBytes = await checkAnswers(base, stack)
    await sleep(500)
    const rssIdleKB = rssKB(server.child.pid)
    const warmups: Array<{ route: string; reqPerSec: number; errors: number }> = []
    for (const route of routes) {
      const spec = { url: `${base}${route.path}`, headers: {}, ...(route.body ? { body: route.body } : {}) }
      const warm = await runLoad(tool, { ...spec, connections: 32, durationS: options.warmup }, scratchDir)
      warmups.push({ route: route.name, reqPerSec: warm.reqPerSec, errors: warm.errors })
      for (const connections of [32, 1]) {
        const m = await measured(server.child.pid, `${stack} ${route.name} c=${connections}`, () =>
          runLoad(tool, { ...spec, connections, durationS: options.duration }, scratchDir))
        const run: HttpRun = {
          stack,
          rep,
          route: route.name,
          connections,
          ...m.value,
          cpuUsPerRequest: round((m.serverCpuS * 1e6) / (m.value.reqPerSec * options.duration), 1),
          othersPercent: m.othersPercent,
          attempts: m.attempts
        }
        runs.push(run)
        console.log(
          `  ${stack.padEnd(16)} rep ${rep} ${route.name.padEnd(17)} c=${String(connections).padEnd(2)} ` +
            `${run.reqPerSec} req/s  p50 ${run.p50Ms} ms  p99 ${run.p99Ms} ms  cpu ${run.cpuUsPerRequest} us/req  ` +
            `errors ${run.errors}  others ${run.othersPercent}%`
        )
      }
    }
    await sleep(500)
    const proc: HttpProcess = {
      stack,
      rep,
      readyMs: server.readyMs,
      rssIdleKB,
      rssAfterKB: rssKB(server.child.pid),
      peakRssKB: peakRssKB(server.child.pid),
      warmups
    }
    return { runs, process: proc, smallBytes, nodeOptions: server.nodeOptions }
  } finally {
    await server.child.kill()
  }
}

// ---- 2. WebSockets ---------------------------------------------------------------------------

const openWs = (url: string) =>
  new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    ws.once("open", () => resolve(ws))
    ws.once("error", reject)
  })


const wsMessage = (i: number) => `${"x".repeat(90)}${String(i).padStart(10, "0")}`

interface WsRun {
  readonly stack: string
  readonly rep: number
  readonly readyMs: number
  readonly echoP50Ms: number
  readonly echoP99Ms: number
  readonly echoErrors: number
  readonly idleOpen: number
  readonly idleFailed: number
  readonly before: { rssKB: number; heapUsedKB: number; externalKB: number }
  readonly after: { rssKB: number; heapUsedKB: number; externalKB: number }
  readonly rssBytesPerConnection: number
  readonly heapBytesPerConnection: number
  readonly openMs: number
  /** Other people's CPU during the reported echo attempt, in percent of one core. */
  readonly othersPercent: number
  readonly attempts: ReadonlyArray<{ waitedMs: number; busyBeforePercent: number; othersPercent: number }>
}

const measureWsStack = async (bundles: Bundles, stack: string, rep: number): Promise<WsRun> => {
  const server = await startServer(bundles, stack)
  let clients: Child | undefined
  try {
    const url = `ws://127.0.0.1:${server.port}/ws`
    // Echo round trips on one connection, the idle ones not open yet.
    const ws = await openWs(url)
    let echoErrors = 0
    let echo: Awaited<ReturnType<typeof measured<Array<number>>>>
    try {
      for (let i = 0; i < options.wsWarmup; i++) if (!(await wsRoundTrip(ws, wsMessage(i)))) echoErrors++
      echo = await measured(server.child.pid, `${stack} echo`, async () => {
        const times: Array<number> = []
        for (let i = 0; i < options.messages; i++) {
          const t0 = performance.now()
          if (await wsRoundTrip(ws, wsMessage(i))) times.push(performance.now() - t0)
          else echoErrors++
        }
        return times
      })
    } finally {
      ws.close(1000)
      await new Promise((resolve) => {
        ws.once("close", resolve)
        setTimeout(resolve, 1000)
      })
    }
    await sleep(500)
    const before = await memoryAfterGc(server)
    const openStarted = Date.now()
    clients = spawnChild({ name: "idle clients", args: tsx(path.join(serversDir, "ws-idle-clients.ts"), url, String(options.idle)) })
    const opened = await clients.firstJson<{ open: number; failed: number }>(120_000, (v) => typeof v.open === "number")
    const openMs = Date.now() - openStarted
    await sleep(2000)
    const after = await memoryAfterGc(server)
    const run: WsRun = {
      stack,
      rep,
      readyMs: server.readyMs,
      echoP50Ms: round(percentile(echo.value, 50), 3),
      echoP99Ms: round(percentile(echo.value, 99), 3),
      echoErrors,
      idleOpen: opened.open,
      idleFailed: opened.failed,
      before,
      after,
      rssBytesPerConnection: Math.round(((after.rssKB - before.rssKB) * 1024) / opened.open),
      heapBytesPerConnection: Math.round(((after.heapUsedKB - before.heapUsedKB) * 1024) / opened.open),
      openMs,
      othersPercent: echo.othersPercent,
      attempts: echo.attempts
    }
    console.log(
      `  ${stack.padEnd(16)} rep ${rep} echo p50 ${run.echoP50Ms} ms p99 ${run.echoP99Ms} ms (errors ${echoErrors}); ` +
        `${opened.open} idle open (${opened.failed} failed) in ${openMs} ms: RSS +${after.rssKB - before.rssKB} kB = ` +
        `${run.rssBytesPerConnection} B/conn, heap ${run.heapBytesPerConnection} B/conn; others ${run.othersPercent}% during the echo`
    )
    return run
  } finally {
    await clients?.kill()
    await server.child.kill()
  }
}

// ---- 3. Start-up -----------------------------------------------------------------------------

const importCases = [
  { name: "node alone (no import)", modules: [] },
  { name: "ws + node:http", modules: ["node:http", "ws"] },
  { name: "effect + ws + node:http", modules: ["node:http", "ws", "effect"] },
  { name: "NodeHttpServer + HttpRouter", modules: ["@effect/platform-node/NodeHttpServer", "@effect/platform/HttpRouter"] }
] as const

const importRun = async (modules: ReadonlyArray<string>) => {
  const code = [
    "const t0 = performance.now()",
    ...modules.map((m) => `await import(${JSON.stringify(m)})`),
    "console.log(JSON.stringify({ importMs: performance.now() - t0, sinceStartMs: performance.now() }))"
  ].join("; ")
  // Node alone: no NODE_OPTIONS (no loader, no preload) in the measured process.
  const child = spawnChild({ name: "import", command: process.execPath, args: ["--input-type=module", "-e", code], env: { NODE_OPTIONS: "" } })
  const line = await child.firstJson<{ importMs: number; sinceStartMs: number }>(30_000)
  const exit = await child.exited
  if (exit.code !== 0) throw new Error(`import of ${modules.join(", ")} exited ${exit.code ?? exit.signal}: ${child.tail()}`)
  return { importMs: round(line.importMs, 1), spawnToExitMs: Date.now() - child.spawnedAt }
}

// ---- the bench -------------------------------------------------------------------------------

const main = async () => {
  const started = Date.now()
  const scratchDir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-http-stack-"))
  process.on("exit", () => fs.rmSync(scratchDir, { recursive: true, force: true }))
  const bundles = await bundleServers(scratchDir)
  const load: Record<string, ReadonlyArray<number>> = { start: loadavg() }
  console.log(`${machine()}, commit ${commit()}${workingTreeDirty() ? " (uncommitted changes)" : ""}, load by ${tool}, load average ${load.start!.join(" ")}`)

  console.log("\n1. HTTP")
  const httpRuns: Array<HttpRun> = []
  const httpProcesses: Array<HttpProcess> = []
  let smallBytes = 0
  let serverNodeOptions = ""
  for (let rep = 1; rep <= options.reps; rep++) {
    for (const stack of rotated(httpStacks, rep - 1)) {
      const result = await measureHttpStack(bundles, stack, rep, scratchDir)
      httpRuns.push(...result.runs)
      httpProcesses.push(result.process)
      smallBytes = result.smallBytes
      serverNodeOptions = result.nodeOptions
    }
  }
  load.afterHttp = loadavg()

  console.log(`\n2. WebSockets (load average ${load.afterHttp.join(" ")})`)
  const wsRuns: Array<WsRun> = []
  for (let rep = 1; rep <= options.reps; rep++) {
    for (const stack of rotated(wsStacks, rep - 1)) wsRuns.push(await measureWsStack(bundles, stack, rep))
  }
  load.afterWs = loadavg()

  console.log(`\n3. Start-up (load average ${load.afterWs.join(" ")})`)
  const importSamples = importCases.map((c) => ({
    name: c.name,
    modules: c.modules,
    importMs: [] as Array<number>,
    spawnToExitMs: [] as Array<number>,
    othersPercent: [] as Array<number>
  }))
  for (let run = 0; run < options.importRuns; run++) {
    for (const sample of rotated(importSamples, run)) {
      const m = await measured(undefined, `import ${sample.name}`, () => importRun(sample.modules))
      sample.importMs.push(m.value.importMs)
      sample.spawnToExitMs.push(m.value.spawnToExitMs)
      sample.othersPercent.push(m.othersPercent)
    }
  }
  load.end = loadavg()

  // ---- medians
  const httpSummary = httpStacks.map((stack) => {
    const pick = (route: Route["name"], c: number) => httpRuns.filter((r) => r.stack === stack && r.route === route && r.connections === c)
    const procs = httpProcesses.filter((p) => p.stack === stack)
    const perRoute = Object.fromEntries(routes.map((route) => {
      const c32 = pick(route.name, 32)
      const c1 = pick(route.name, 1)
      return [route.name, {
        reqPerSecC32: median(c32.map((r) => r.reqPerSec)),
        cpuUsPerRequestC32: median(c32.map((r) => r.cpuUsPerRequest)),
        p50MsC1: median(c1.map((r) => r.p50Ms)),
        p99MsC1: median(c1.map((r) => r.p99Ms)),
        errors: [...c32, ...c1].reduce((n, r) => n + r.errors, 0)
      }]
    }))
    return {
      stack,
      routes: perRoute,
      readyMs: median(procs.map((p) => p.readyMs)),
      rssIdleMB: round(median(procs.map((p) => p.rssIdleKB)) / 1024, 1),
      rssAfterMB: round(median(procs.map((p) => p.rssAfterKB)) / 1024, 1),
      peakRssMB: round(median(procs.map((p) => p.peakRssKB)) / 1024, 1),
      othersPercent: Object.fromEntries(routes.map((route) => [route.name, httpRuns.filter((r) => r.stack === stack && r.route === route.name).map((r) => r.othersPercent)]))
    }
  })
  const wsSummary = wsStacks.map((stack) => {
    const runs = wsRuns.filter((r) => r.stack === stack)
    return {
      stack,
      readyMs: median(runs.map((r) => r.readyMs)),
      echoP50Ms: median(runs.map((r) => r.echoP50Ms)),
      echoP99Ms: median(runs.map((r) => r.echoP99Ms)),
      rssBytesPerConnection: median(runs.map((r) => r.rssBytesPerConnection)),
      heapBytesPerConnection: median(runs.map((r) => r.heapBytesPerConnection)),
      idleRssMB: round(median(runs.map((r) => r.before.rssKB)) / 1024, 1),
      errors: runs.reduce((n, r) => n + r.echoErrors + r.idleFailed, 0),
      othersPercent: runs.map((r) => r.othersPercent)
    }
  })
  const importSummary = importSamples.map((s) => ({
    name: s.name,
    importMs: round(median(s.importMs), 1),
    spawnToExitMs: median(s.spawnToExitMs),
    othersPercent: s.othersPercent
  }))

  const result = {
    commit: commit(),
    dirty: workingTreeDirty(),
    date: new Date().toISOString(),
    machine: machine(),
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    versions: Object.fromEntries(["effect", "@effect/platform", "@effect/platform-node", "ws"].map((name) => [
      name,
      JSON.parse(fs.readFileSync(path.join(repoRoot, "node_modules", name, "package.json"), "utf8")).version
    ])),
    tool,
    latencyResolutionMs: tool === "wrk" ? 0.001 : 1,
    settings: { ...options, out: undefined, smallBodyBytes: smallBytes, postBodyBytes: body64k.length, clockTicks, serverNodeOptions },
    loadavg: load,
    durationS: Math.round((Date.now() - started) / 1000),
    extraSpentS: Math.round(extraSpentMs / 1000),
    bundlesKB: Object.fromEntries(Object.entries(bundles).map(([name, b]) => [name, b.kB])),
    summary: { http: httpSummary, ws: wsSummary, imports: importSummary },
    http: { runs: httpRuns, processes: httpProcesses },
    ws: wsRuns,
    imports: importSamples
  }
  const file = writeResult("http-stack", result, options.out)

  const fmt = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : "-")
  console.log(`\nHTTP, medians of ${options.reps} (req/s and CPU at c=32, latency at c=1; ${options.duration} s runs after ${options.warmup} s warm-up):`)
  console.log(table(httpSummary.flatMap((s) => routes.map((route) => {
    const r = s.routes[route.name]!
    return {
      stack: s.stack,
      route: route.name,
      "req/s c=32": r.reqPerSecC32,
      "cpu us/req": fmt(r.cpuUsPerRequestC32, 1),
      "p50 ms c=1": fmt(r.p50MsC1, 3),
      "p99 ms c=1": fmt(r.p99MsC1, 3),
      "RSS idle MB": s.rssIdleMB,
      "RSS after MB": s.rssAfterMB,
      "peak MB": s.peakRssMB,
      "others %": s.othersPercent[route.name]!.join("/"),
      errors: r.errors
    }
  }))))
  console.log(`\nWebSockets, medians of ${options.reps} (${options.idle} idle connections; echo over ${options.messages} sequential messages of ${wsMessage(0).length} bytes):`)
  console.log(table(wsSummary.map((s) => ({
    stack: s.stack,
    "RSS B/conn": s.rssBytesPerConnection,
    "heap B/conn": s.heapBytesPerConnection,
    "echo p50 ms": fmt(s.echoP50Ms, 3),
    "echo p99 ms": fmt(s.echoP99Ms, 3),
    "RSS idle MB": s.idleRssMB,
    "others % (echo)": s.othersPercent.join("/"),
    errors: s.errors
  }))))
  console.log(`\nStart-up, medians of ${options.importRuns} (node --input-type=module -e, dynamic import from node_modules; bundled servers spawn -> listening):`)
  console.log(table([
    ...(options.importRuns === 0 ? [] : importSummary).map((s) => ({
      what: `import ${s.name}`,
      "in-process ms": fmt(s.importMs, 1),
      "spawn->exit ms": s.spawnToExitMs,
      "others %": s.othersPercent.join("/")
    })),
    ...[...httpSummary, ...wsSummary].map((s) => ({ what: `bundled ${s.stack} server`, "in-process ms": "", "spawn->exit ms": `${s.readyMs} (to listening)`, "others %": "" }))
  ]))
  const errors = httpSummary.some((s) => Object.values(s.routes).some((r) => r.errors > 0)) || wsSummary.some((s) => s.errors > 0)
  if (errors) console.log("warning: some runs had errors; see the JSON")
  if (tool === "autocannon") console.log("note: autocannon records latency in whole milliseconds (install wrk for finer figures)")
  console.log(`load average: ${Object.entries(load).map(([k, v]) => `${k} ${v.join(" ")}`).join("; ")}; took ${result.durationS} s (${result.extraSpentS} s of it waiting for quiet or measuring again)\nwritten: ${file}`)
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
