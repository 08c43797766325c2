/**
 * `npm run gameday`: a rolling restart of two relays under load, measured.
 *
 * Starts Redis (a private `redis-server` on a free port unless REDIS_URL is
 * set), two relays (the real CLI, proxy routing, one shared directory), one
 * target, a load generator behaving like a load balancer in front of both
 * relays, and, for each round, N real host agents (in a few worker processes)
 * that know both relay URLs. Each round restarts relay A then relay B in place
 * (signal, wait for the exit, start again on the same port, wait for /ready):
 * - `drain`: SIGINT, the relay's drain;
 * - `sigkill`: SIGKILL, the baseline without a drain;
 * - `drain-prefix-backoff`: SIGINT, but hosts run the backoff from before
 *   drains were handled (no reset on a drain, cap 30 s).
 * Prints a table and writes `bench-results/gameday-<timestamp>.json`.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { freePort, privateRedis, testSecret, token } from "@effect-relay/testkit"
import { Cause, Effect, Exit } from "effect"
import { Redis } from "ioredis"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { commit, cpuBusyPercent, cpuTimes, flags, machine, repoRoot, sleep, table, workingTreeDirty, writeResult } from "./lib/bench.js"
import { type ChildWorker, startChildWorker } from "./lib/child-worker.js"
import { countOwnedBy, readDirectory, staleEntries } from "./lib/directory-audit.js"
import type { HostSettings, LoadCommand, LoadEvent, LoadReport } from "./lib/gameday-messages.js"
import { groupFailures, outages, peakPerSecond, summarize, type TimelineEvent, tunnelDowntime } from "./lib/gameday-stats.js"
import { type HostFleet, startHostFleet } from "./lib/host-fleet.js"
import { sampleCpu } from "./lib/process-cpu.js"
import { type RelayInstance, relayInstance } from "./lib/relay-instance.js"
import { readTcpCounters, tcpCountersSince } from "./lib/tcp-counters.js"

const roundKinds = {
  drain: { signal: "SIGINT", settings: { resetOnDrain: true, backoffCapMs: 5_000 } },
  sigkill: { signal: "SIGKILL", settings: { resetOnDrain: true, backoffCapMs: 5_000 } },
  "drain-prefix-backoff": { signal: "SIGINT", settings: { resetOnDrain: false, backoffCapMs: 30_000 } },
  // The control: the same hosts and load with no restart, so what the restarts cost can be told
  // apart from what the load alone costs on this machine. Not in the default rounds.
  steady: { signal: undefined, settings: { resetOnDrain: true, backoffCapMs: 5_000 } }
} as const satisfies Record<string, { signal: "SIGINT" | "SIGKILL" | undefined; settings: HostSettings }>
type RoundName = keyof typeof roundKinds
const defaultRounds: ReadonlyArray<RoundName> = ["drain", "sigkill", "drain-prefix-backoff"]

const help = `npm run gameday [-- flags]: rolling restart of two relays (proxy routing, shared Redis directory) under load.
  --hosts     host agents (real HostAgentLive, one per host, in --workers processes)
  --rate      requests per second over all hosts, alternating between the relays
  --rounds    comma-separated, run in this order: ${Object.keys(roundKinds).join(", ")}
              (steady: the same hosts and load without any restart, the control)
  --duration  seconds each round is measured at least (the restarts happen inside; longer if they need it)
  --workers   host worker processes
  --out       directory for gameday-<timestamp>.json
Set REDIS_URL to use an existing Redis (keys under a fresh prefix, removed afterwards); else a private redis-server is started.
Logs of the relays, host workers and load generator go to a temporary directory (printed). For investigating:
GAMEDAY_HOST_LOG_LEVEL=info logs every host's connects, drains and reconnect delays (default warn);
GAMEDAY_WORKER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" passes Node flags to the worker processes.`

const options = flags(
  { hosts: 1000, rate: 500, rounds: defaultRounds.join(","), duration: 30, workers: 2, out: path.join(repoRoot, "bench-results") },
  process.argv.slice(2),
  help
)

const rounds = options.rounds.split(",").map((r) => r.trim()).filter((r) => r !== "")
for (const r of rounds) {
  if (!(r in roundKinds)) throw new Error(`unknown round "${r}"; known: ${Object.keys(roundKinds).join(", ")}`)
}
if (!Number.isInteger(options.hosts) || options.hosts < 1) throw new Error("--hosts must be a positive integer")
if (!(options.rate > 0)) throw new Error("--rate must be > 0")
if (!(options.duration > 0)) throw new Error("--duration must be > 0")
if (!Number.isInteger(options.workers) || options.workers < 1) throw new Error("--workers must be a positive integer")

const org = "gameday"
const hostIds = Array.from({ length: options.hosts }, (_, i) => `${org}:h${i}`)
/** How often one host gets a request when the load goes round all of them. */
const spacingMs = (options.hosts / options.rate) * 1000
/** Long enough for every host to have answered at least once before a round is measured. */
const warmupMs = Math.max(2_000, 2 * spacingMs + 1_000)
/** Steady load before the first restart of a round. */
const leadMs = Math.min(3_000, (options.duration * 1000) / 4)
/** After every host is back: each gets requested at least twice more before the round ends. */
const settleMs = Math.max(1_000, 2 * spacingMs + 500)
/** How long hosts may take to come back after the last restart before the round ends anyway. */
const recoveryTimeoutMs = 90_000
const requestTimeoutMs = 10_000

const startedAt = Date.now()
const log = (line: string) => console.log(`[gameday +${((Date.now() - startedAt) / 1000).toFixed(1)}s] ${line}`)

/** A plain target every host forwards to: `200 ok`, connections kept for the whole run. */
const startTarget = Effect.acquireRelease(
  Effect.async<http.Server>((resume) => {
    const server = http.createServer((req, res) => {
      req.resume()
      res.end("ok")
    })
    // Longer than any round: an idle-timeout race on the target is not what this measures.
    server.keepAliveTimeout = 600_000
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as { port: number }).port}`))

interface RoundResult {
  readonly name: RoundName
  readonly requests: number
  readonly failedRequests: number
  readonly failedPercent: number
  readonly refusedRetried: number
  readonly outageMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly drainMs: ReadonlyArray<number>
  readonly staleEntries: number
  readonly peakRegistrationsPerSec: number
  /** Host-side view: how long tunnels were down (end of one tunnel to the opening of the next). */
  readonly tunnelDowntime: ReturnType<typeof tunnelDowntime>
  readonly machineCpuBusyPercent: number
  readonly failureBreakdown: ReturnType<typeof groupFailures>
  /** More detail for whoever reads the JSON (timeline, per-relay figures, harness health). */
  readonly [detail: string]: unknown
}

const program = Effect.gen(function*() {
  const logsDir = fs.mkdtempSync(path.join(os.tmpdir(), "gameday-"))
  log(`${options.hosts} hosts, ${options.rate} req/s, rounds ${rounds.join(", ")}; logs in ${logsDir}`)

  const externalRedis = process.env.REDIS_URL
  const redisUrl = externalRedis ?? (yield* privateRedis).url
  const prefix = `gameday:${Date.now()}:`
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 })
  redis.on("error", () => {})
  yield* Effect.addFinalizer(() =>
    Effect.promise(async () => {
      try {
        const keys = await redis.keys(`${prefix}*`)
        if (keys.length > 0) await redis.del(...keys)
      } finally {
        redis.disconnect()
      }
    }).pipe(Effect.timeout("5 seconds"), Effect.ignore)
  )

  const targetUrl = yield* startTarget
  const hostToken = yield* token({ org, expiresIn: 6 * 3600 })
  const clientToken = yield* token({ org, expiresIn: 6 * 3600 })

  const relayEnv = {
    RELAY_AUTH_SECRET: testSecret,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    RELAY_PEER_SECRET: `gameday-peer-${process.pid}-${Date.now()}`,
    ROUTING: "proxy",
    LOG_LEVEL: "info"
  }
  const relays: ReadonlyArray<RelayInstance> = [
    relayInstance({ name: "a", port: yield* freePort, region: org, env: relayEnv }),
    relayInstance({ name: "b", port: yield* freePort, region: org, env: relayEnv })
  ]
  // Whatever state a relay is in when the run ends (one may have failed to start): killed, and
  // its log lines (every run of the process) kept next to the workers' logs.
  yield* Effect.addFinalizer(() =>
    Effect.promise(() =>
      Promise.all(relays.map(async (r) => {
        if (r.isRunning()) await r.stop("SIGKILL")
        const lines = [...r.logs().map((l) => JSON.stringify(l)), ...r.otherOutput()]
        fs.writeFileSync(path.join(logsDir, `relay-${r.name}.log`), lines.join("\n") + "\n")
      }))
    )
  )
  yield* Effect.promise(() => Promise.all(relays.map((r) => r.start())))
  log(`relays a ${relays[0]!.http}, b ${relays[1]!.http}; redis ${externalRedis ? "from REDIS_URL" : redisUrl} prefix ${prefix}`)

  const load = yield* Effect.acquireRelease(
    Effect.sync(() =>
      startChildWorker<LoadCommand, LoadEvent>("load generator", path.join(repoRoot, "scripts/lib/load-worker.ts"), path.join(logsDir, "load.log"))
    ),
    (worker) => Effect.promise(() => worker.kill())
  )
  yield* Effect.promise(async () => {
    const configured = load.waitFor("configured", 30_000)
    load.send({
      type: "configure",
      relayUrls: [relays[0]!.http, relays[1]!.http],
      hostIds,
      token: clientToken,
      rate: options.rate,
      timeoutMs: requestTimeoutMs
    })
    await configured
  })

  const results: Array<RoundResult> = []
  for (const name of rounds as Array<RoundName>) {
    results.push(yield* runRound(name, { relays, load, redis, prefix, hostToken, targetUrl, logsDir }))
  }

  const result = {
    commit: commit(),
    workingTreeDirty: workingTreeDirty(),
    date: new Date().toISOString(),
    machine: machine(),
    hosts: options.hosts,
    rate: options.rate,
    durationS: options.duration,
    hostWorkers: options.workers,
    redis: externalRedis ? "REDIS_URL" : "private redis-server",
    requestSpacingPerHostMs: Math.round(spacingMs),
    outageDefinition:
      "per host: the longest time without a successful response during the round (last success before the disruption to first success after), minus the normal spacing of requests to one host (requestSpacingPerHostMs); 0 for a host that never missed its turn",
    logsDir,
    rounds: results
  }
  const file = writeResult("gameday", result, options.out)
  console.log("")
  console.log(table(results.map((r) => ({
    round: r.name,
    requests: r.requests,
    failed: `${r.failedRequests} (${r.failedPercent}%)`,
    "refused->retried": r.refusedRetried,
    "outage p50/p99/max ms": `${r.outageMs.p50} / ${r.outageMs.p99} / ${r.outageMs.max}`,
    "drain ms a/b": r.drainMs.join(" / "),
    "stale entries": r.staleEntries,
    "tunnel down p50/p99 ms": `${r.tunnelDowntime.ms.p50} / ${r.tunnelDowntime.ms.p99}`,
    "peak reg/s": r.peakRegistrationsPerSec,
    "machine cpu %": r.machineCpuBusyPercent
  }))))
  for (const r of results) {
    const groups = r.failureBreakdown
    if (groups.length === 0) continue
    console.log(`\n${r.name}: failed requests by phase (sent at), relay that answered, error`)
    console.log(table(groups.slice(0, 15).map((g) => ({
      phase: g.phase,
      relay: g.relay,
      error: `${g.kind}${g.retried ? " (retry after refusal)" : ""}`,
      count: g.count,
      hosts: g.hosts,
      "sent at ms": `${g.firstSentAtMs}..${g.lastSentAtMs}`
    }))))
    if (groups.length > 15) console.log(`... ${groups.length - 15} more groups in the JSON`)
  }
  console.log(`\nwritten: ${file}`)
})

interface RoundContext {
  readonly relays: ReadonlyArray<RelayInstance>
  readonly load: ChildWorker<LoadCommand, LoadEvent>
  readonly redis: Redis
  readonly prefix: string
  readonly hostToken: string
  readonly targetUrl: string
  readonly logsDir: string
}

const roundDelay = (d: { readonly p99: number; readonly max: number }) => ({ p99: Math.round(d.p99), max: Math.round(d.max) })

const runRound = (name: RoundName, ctx: RoundContext) =>
  Effect.gen(function*() {
    const kind = roundKinds[name]
    const { relays, load, redis, prefix } = ctx
    log(`round ${name}: starting ${options.hosts} hosts (${JSON.stringify(kind.settings)})`)
    const fleet: HostFleet = yield* Effect.acquireRelease(
      Effect.promise(() =>
        startHostFleet({
          hostIds,
          workers: options.workers,
          relayUrls: relays.map((r) => r.ws),
          token: ctx.hostToken,
          targetUrl: ctx.targetUrl,
          settings: kind.settings,
          logPrefix: path.join(ctx.logsDir, `hosts-${name}`)
        })
      ),
      (fleet) => Effect.promise(() => fleet.stop())
    )
    yield* Effect.promise(async () => {
      await fleet.allConnected(120_000)
      // Registered means in the directory, under a relay that is running.
      const deadline = Date.now() + 30_000
      while (true) {
        const entries = await readDirectory(redis, prefix)
        const live = entries.filter((e) => relays.some((r) => r.owner === e.owner))
        if (live.length >= options.hosts) break
        if (Date.now() > deadline) throw new Error(`only ${live.length} of ${options.hosts} hosts in the directory after 30 s`)
        await sleep(100)
      }
    })
    const entries0 = yield* Effect.promise(() => readDirectory(redis, prefix))
    log(`round ${name}: hosts connected (a ${countOwnedBy(entries0, relays[0]!.owner)}, b ${countOwnedBy(entries0, relays[1]!.owner)}); load ${options.rate} req/s, warm-up ${Math.round(warmupMs)} ms`)

    const measured = yield* Effect.promise(async () => {
      const running = load.waitFor("running", 10_000)
      load.send({ type: "run" })
      await running
      await sleep(warmupMs)
      const measuring = load.waitFor("measuring", 10_000)
      load.send({ type: "measure" })
      const roundStart = (await measuring).at
      fleet.measure()
      const cpuAtStart = cpuTimes()
      const tcpAtStart = readTcpCounters()
      const processCpu = sampleCpu(() => ({
        ...Object.fromEntries(relays.map((r) => [`relay ${r.name}`, r.pid()])),
        ...Object.fromEntries(fleet.pids.map((pid, i) => [`host worker ${i}`, pid])),
        "load generator": load.pid,
        "orchestrator + target": process.pid
      }))
      await sleep(leadMs)

      const timeline: Array<TimelineEvent> = []
      const stops: Array<Awaited<ReturnType<RelayInstance["stop"]>>> = []
      const entriesAtExit: Record<string, number> = {}
      const restartMs: Record<string, number> = {}
      const signal = kind.signal
      // One relay after the other, as a platform rolls a deploy; none in the steady round.
      if (signal !== undefined) {
        for (const relay of relays) {
          timeline.push({ at: Date.now(), phase: `${relay.name} ${signal === "SIGINT" ? "draining" : "killed"}` })
          const stop = await relay.stop(signal)
          stops.push(stop)
          timeline.push({ at: stop.exitAt, phase: `${relay.name} down` })
          entriesAtExit[relay.name] = countOwnedBy(await readDirectory(redis, prefix), relay.owner)
          const start = await relay.start()
          timeline.push({ at: start.listeningAt, phase: `${relay.name} listening, not ready` })
          timeline.push({ at: start.readyAt, phase: `${relay.name} ready` })
          restartMs[relay.name] = start.readyAt - stop.signalAt
          log(`round ${name}: ${relay.name} ${signal} -> exit ${stop.ms} ms (code ${stop.code ?? stop.signal}), left ${entriesAtExit[relay.name]} entries, ready again ${restartMs[relay.name]} ms after the signal`)
        }
      }
      const restartsDone = Date.now()
      // Measure for --duration at least, and until every host is back and was requested again.
      const recoveryDeadline = restartsDone + recoveryTimeoutMs
      while (Date.now() < recoveryDeadline && (fleet.connected() < options.hosts || Date.now() < roundStart + options.duration * 1000)) {
        await sleep(100)
      }
      const recovered = fleet.connected() >= options.hosts
      if (!recovered) log(`round ${name}: ${options.hosts - fleet.connected()} hosts still not connected ${recoveryTimeoutMs} ms after the restarts`)
      await sleep(settleMs)
      const ended = load.waitFor("report", requestTimeoutMs + 30_000)
      load.send({ type: "end" })
      const report: LoadReport = await ended
      const cpuBusy = cpuBusyPercent(cpuAtStart, cpuTimes())
      const cpuByProcess = processCpu.stop()
      const tcp = tcpCountersSince(tcpAtStart)
      return { roundStart, timeline, stops, entriesAtExit, restartMs, restartsDone, recovered, report, cpuBusy, cpuByProcess, tcp }
    })

    const { report, roundStart, timeline, stops } = measured
    const roundEnd = report.measuredTo
    const fleetReport = yield* Effect.promise(() => fleet.report())
    const entries = yield* Effect.promise(() => readDirectory(redis, prefix))
    const stale = staleEntries(entries, relays.map((r) => ({ owner: r.owner, running: r.isRunning(), spawnedAt: r.currentSpawnedAt() })))
    const peakByRelay = Object.fromEntries(relays.map((r) => [r.name, peakPerSecond(r.registrations(), roundStart, roundEnd)]))
    const registrationsByRelay = Object.fromEntries(
      relays.map((r) => [r.name, r.registrations().filter((t) => t >= roundStart && t <= roundEnd).length])
    )
    const hostOutages = outages(report.longestGapMs, spacingMs)
    const failureBreakdown = groupFailures(report.failures, timeline, relays.map((r) => r.name), roundStart)
    const result: RoundResult = {
      name,
      requests: report.requests,
      failedRequests: report.failedRequests,
      failedPercent: report.requests === 0 ? 0 : +((100 * report.failedRequests) / report.requests).toFixed(3),
      refusedRetried: report.refusedRetried,
      outageMs: summarize(hostOutages),
      drainMs: stops.map((s) => s.ms),
      staleEntries: stale.length,
      peakRegistrationsPerSec: Math.max(0, ...Object.values(peakByRelay)),
      signal: kind.signal ?? "none",
      hostSettings: kind.settings,
      measuredMs: roundEnd - roundStart,
      hostsWithOutageOver1s: hostOutages.filter((o) => o > 1000).length,
      hostsWithFailedRequests: new Set(report.failures.map((f) => f.hostId)).size,
      peakRegistrationsPerSecByRelay: peakByRelay,
      registrationsByRelay,
      relayExitCodes: stops.map((s) => s.code),
      relayDrainDoneMs: stops.map((s) => s.drainDoneMs ?? null),
      signalToReadyMs: relays.map((r) => measured.restartMs[r.name]),
      entriesLeftAtExit: measured.entriesAtExit,
      staleEntryHosts: stale.slice(0, 20).map((e) => `${e.hostId} (${e.owner})`),
      everyHostBack: measured.recovered,
      tunnelDowntime: tunnelDowntime(fleetReport.gaps, roundStart, roundEnd),
      latencyMs: report.latencyMs,
      loadGeneratorMaxLagMs: report.maxLagMs,
      // A harness process that runs late measures late: these say whether the figures can be trusted.
      eventLoopDelayMs: {
        loadGenerator: roundDelay(report.eventLoopDelayMs),
        hostWorkers: fleetReport.eventLoopDelayMs.map(roundDelay)
      },
      // Everything on the machine, the harness and anything else that ran: near 100 means starved.
      machineCpuBusyPercent: measured.cpuBusy,
      // Core-seconds and the busiest second (percent of one core) of each process of the game day.
      cpuByProcess: measured.cpuByProcess,
      // Machine-wide kernel counters during the round: connections a full listen queue dropped
      // (the client then sees a reset or a refusal from a process that is running).
      tcpListenQueue: measured.tcp,
      machineLoadAverage: os.loadavg().map((l) => +l.toFixed(2)),
      failuresDropped: report.failuresDropped,
      timeline: timeline.map((t) => ({ phase: t.phase, atMs: t.at - roundStart })),
      failureBreakdown
    }
    log(
      `round ${name}: ${result.requests} requests, ${result.failedRequests} failed, ${result.refusedRetried} refused->retried, outage p99 ${result.outageMs.p99} ms, stale ${result.staleEntries}, peak ${result.peakRegistrationsPerSec} reg/s; machine CPU ${measured.cpuBusy}% busy, event-loop delay max: load ${Math.round(report.eventLoopDelayMs.max)} ms, host workers ${fleetReport.eventLoopDelayMs.map((d) => Math.round(d.max)).join("/")} ms; listen-queue overflows ${measured.tcp.ListenOverflows}`
    )
    log(
      `round ${name}: CPU core-seconds (busiest second): ${
        Object.entries(measured.cpuByProcess).map(([p, c]) => `${p} ${c.cpuSeconds} (${c.peakPercent}%)`).join(", ")
      }`
    )
    return result
  }).pipe(Effect.scoped)

// A crash in a callback must still run the finalizers (children, Redis): turn it into an interrupt.
let crashed = false
const crash = (error: unknown) => {
  console.error("gameday failed:", error)
  crashed = true
  process.kill(process.pid, "SIGTERM")
}
process.on("uncaughtException", crash)
process.on("unhandledRejection", crash)

// SIGINT/SIGTERM interrupt the program, so every finalizer runs (workers, relays, Redis, target).
NodeRuntime.runMain(
  program.pipe(
    Effect.scoped,
    Effect.tapErrorCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Effect.sync(() => console.error(Cause.pretty(cause))))
  ),
  {
    disablePrettyLogger: true,
    disableErrorReporting: true,
    teardown: (exit, onExit) =>
      onExit(crashed ? 1 : Exit.isSuccess(exit) ? 0 : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
  }
)
