/**
 * One round of the game day: a fresh fleet of hosts connects, the load runs,
 * and, while it is measured, relay A then relay B are restarted in place;
 * then the round waits for every host to be back, ends the load and reads
 * what it left behind (the directory, the hosts' tunnel gaps).
 */
import { Effect } from "effect"
import type { Redis } from "ioredis"
import * as path from "node:path"
import { cpuBusyPercent, cpuTimes, sleep } from "../lib/bench.js"
import { countOwnedBy, readDirectory, staleEntries } from "./directory-audit.js"
import { type HostFleet, startHostFleet } from "./host-fleet.js"
import type { LoadGenerator } from "./load-generator.js"
import { type GamedayOptions, type RoundKind, roundKinds, type RoundName } from "./options.js"
import { sampleCpu } from "./process-cpu.js"
import type { RelayInstance, RelayStop } from "./relay-instance.js"
import { log, logRound, type RoundMeasurement, type RoundResult, roundResult } from "./report.js"
import type { TimelineEvent } from "./stats.js"
import { readTcpCounters, tcpCountersSince } from "./tcp-counters.js"

/** What every round shares: the relays, the load generator, the directory, the hosts' token and target. */
export interface RoundContext {
  readonly options: GamedayOptions
  readonly relays: ReadonlyArray<RelayInstance>
  readonly load: LoadGenerator
  readonly redis: Redis
  readonly prefix: string
  readonly hostToken: string
  readonly targetUrl: string
  readonly logsDir: string
}

export const runRound = (name: RoundName, ctx: RoundContext) =>
  Effect.gen(function*() {
    const kind: RoundKind = roundKinds[name]
    const { relays, redis, prefix, options } = ctx
    log(`round ${name}: starting ${options.hosts} hosts (${JSON.stringify(kind.settings)})`)
    const fleet = yield* startFleet(name, kind, ctx)
    yield* Effect.promise(() => waitUntilRegistered(fleet, ctx))
    const entries0 = yield* Effect.promise(() => readDirectory(redis, prefix))
    log(`round ${name}: hosts connected (a ${countOwnedBy(entries0, relays[0]!.owner)}, b ${countOwnedBy(entries0, relays[1]!.owner)}); load ${options.rate} req/s, warm-up ${Math.round(options.warmupMs)} ms`)

    const measured = yield* Effect.promise(() => measureRound(name, kind, fleet, ctx))

    const fleetReport = yield* Effect.promise(() => fleet.report())
    const entries = yield* Effect.promise(() => readDirectory(redis, prefix))
    const stale = staleEntries(entries, relays.map((r) => ({ owner: r.owner, running: r.isRunning(), spawnedAt: r.currentSpawnedAt() })))
    const result = roundResult({ name, kind, spacingMs: options.spacingMs }, relays, measured, fleetReport, stale)
    logRound(result, measured, fleetReport)
    return result
  }).pipe(Effect.scoped) satisfies Effect.Effect<RoundResult>

// --- The steps of a round, in order

/** The round's hosts (real host agents in worker processes), stopped when the round's scope closes. */
const startFleet = (name: RoundName, kind: RoundKind, ctx: RoundContext) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      startHostFleet({
        hostIds: ctx.options.hostIds,
        workers: ctx.options.workers,
        relayUrls: ctx.relays.map((r) => r.ws),
        token: ctx.hostToken,
        targetUrl: ctx.targetUrl,
        settings: kind.settings,
        logPrefix: path.join(ctx.logsDir, `hosts-${name}`)
      })
    ),
    (fleet) => Effect.promise(() => fleet.stop())
  )

/** Every host's tunnel open, and registered: in the directory, under a relay that is running. */
const waitUntilRegistered = async (fleet: HostFleet, ctx: RoundContext) => {
  await fleet.allConnected(120_000)
  const deadline = Date.now() + 30_000
  while (true) {
    const entries = await readDirectory(ctx.redis, ctx.prefix)
    const live = entries.filter((e) => ctx.relays.some((r) => r.owner === e.owner))
    if (live.length >= ctx.options.hosts) return
    if (Date.now() > deadline) throw new Error(`only ${live.length} of ${ctx.options.hosts} hosts in the directory after 30 s`)
    await sleep(100)
  }
}

/** Load, warm-up, measurement with the restarts inside it, recovery, and the load generator's report. */
const measureRound = async (name: RoundName, kind: RoundKind, fleet: HostFleet, ctx: RoundContext): Promise<RoundMeasurement> => {
  const { options, load } = ctx
  await load.run()
  await sleep(options.warmupMs)
  const roundStart = await load.measure()
  fleet.measure()
  const usage = sampleMachine(fleet, ctx)
  await sleep(options.leadMs)
  const restarts = kind.signal === undefined ? noRestarts() : await restartRelays(name, kind.signal, ctx)
  const recovered = await waitForRecovery(name, fleet, roundStart, options)
  await sleep(options.settleMs)
  const report = await load.end()
  return { roundStart, ...restarts, recovered, report, ...usage.stop() }
}

/** Machine CPU, kernel TCP counters and per-process CPU from now until `stop`. */
const sampleMachine = (fleet: HostFleet, ctx: RoundContext) => {
  const cpuAtStart = cpuTimes()
  const tcpAtStart = readTcpCounters()
  const processCpu = sampleCpu(() => ({
    ...Object.fromEntries(ctx.relays.map((r) => [`relay ${r.name}`, r.pid()])),
    ...Object.fromEntries(fleet.pids.map((pid, i) => [`host worker ${i}`, pid])),
    "load generator": ctx.load.pid,
    "orchestrator + target": process.pid
  }))
  return {
    stop: () => ({ cpuBusy: cpuBusyPercent(cpuAtStart, cpuTimes()), cpuByProcess: processCpu.stop(), tcp: tcpCountersSince(tcpAtStart) })
  }
}

type Restarts = Pick<RoundMeasurement, "timeline" | "stops" | "entriesAtExit" | "restartMs">
/** The steady round's. */
const noRestarts = (): Restarts => ({ timeline: [], stops: [], entriesAtExit: {}, restartMs: {} })

/** One relay after the other, as a platform rolls a deploy: signal, exit, start on the same port, ready. */
const restartRelays = async (name: RoundName, signal: "SIGINT" | "SIGKILL", ctx: RoundContext): Promise<Restarts> => {
  const timeline: Array<TimelineEvent> = []
  const stops: Array<RelayStop> = []
  const entriesAtExit: Record<string, number> = {}
  const restartMs: Record<string, number> = {}
  for (const relay of ctx.relays) {
    timeline.push({ at: Date.now(), phase: `${relay.name} ${signal === "SIGINT" ? "draining" : "killed"}` })
    const stop = await relay.stop(signal)
    stops.push(stop)
    timeline.push({ at: stop.exitAt, phase: `${relay.name} down` })
    entriesAtExit[relay.name] = countOwnedBy(await readDirectory(ctx.redis, ctx.prefix), relay.owner)
    const start = await relay.start()
    timeline.push({ at: start.listeningAt, phase: `${relay.name} listening, not ready` })
    timeline.push({ at: start.readyAt, phase: `${relay.name} ready` })
    restartMs[relay.name] = start.readyAt - stop.signalAt
    log(`round ${name}: ${relay.name} ${signal} -> exit ${stop.ms} ms (code ${stop.code ?? stop.signal}), left ${entriesAtExit[relay.name]} entries, ready again ${restartMs[relay.name]} ms after the signal`)
  }
  return { timeline, stops, entriesAtExit, restartMs }
}

/**
 * Measures for --duration at least, and until every host is back (or the recovery timeout
 * after the restarts passed); whether every host came back.
 */
const waitForRecovery = async (name: RoundName, fleet: HostFleet, roundStart: number, options: GamedayOptions) => {
  const recoveryDeadline = Date.now() + options.recoveryTimeoutMs
  while (Date.now() < recoveryDeadline && (fleet.connected() < options.hosts || Date.now() < roundStart + options.duration * 1000)) {
    await sleep(100)
  }
  const recovered = fleet.connected() >= options.hosts
  if (!recovered) log(`round ${name}: ${options.hosts - fleet.connected()} hosts still not connected ${options.recoveryTimeoutMs} ms after the restarts`)
  return recovered
}
