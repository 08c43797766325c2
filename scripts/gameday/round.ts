/**
 * One round of the game day: a fresh fleet of hosts connects, the load runs,
 * and, while it is measured, the round's relays are restarted in place one
 * after the other (relay a then b; or relay s alone in `single-relay`); then
 * the round waits for every host to be back to all its tunnels, ends the load
 * and reads what it left behind (the directory, the hosts' tunnel gaps, the
 * relays' hold counters and memory).
 */
import { messageOf } from "@effect-relay/testkit"
import { Effect } from "effect"
import type { Redis } from "ioredis"
import * as path from "node:path"
import { cpuBusyPercent, cpuTimes, rssKB, sleep } from "../lib/bench.js"
import { countOwnedBy, hostsWithOwners, readDirectory, staleEntries } from "./directory-audit.js"
import { type HostFleet, startHostFleet } from "./host-fleet.js"
import type { LoadGenerator } from "./load-generator.js"
import type { RelaySignal } from "./messages.js"
import { type GamedayOptions, type RoundKind, roundKinds, type RoundName } from "./options.js"
import { sampleCpu } from "./process-cpu.js"
import type { RelayInstance, RelayStop } from "./relay-instance.js"
import { holdTally } from "./relay-metrics.js"
import { log, logRound, type RoundMeasurement, type RoundResult, roundResult } from "./report.js"
import type { TimelineEvent } from "./stats.js"
import { readTcpCounters, tcpCountersSince } from "./tcp-counters.js"

/** What every round shares: the relays, the load generator, the directory, the hosts' token and target. */
export interface RoundContext {
  readonly options: GamedayOptions
  /** Relays a and b, on the Redis directory. */
  readonly relays: ReadonlyArray<RelayInstance>
  /** Relay s, alone with its in-memory directory, when a single-relay round runs. */
  readonly single: RelayInstance | undefined
  /** Each relay's RSS (KB) when it had just started, before any host: subtracted for the RSS per host. */
  readonly idleRssKB: Record<string, number>
  readonly load: LoadGenerator
  readonly redis: Redis
  readonly prefix: string
  readonly hostToken: string
  readonly targetUrl: string
  readonly logsDir: string
}

/** The relays and tunnels of one round. */
export interface RoundSetup {
  readonly name: RoundName
  readonly kind: RoundKind
  readonly relays: ReadonlyArray<RelayInstance>
  /** Tunnels per host. */
  readonly tunnels: number
  /** Whether the directory is the shared Redis one (false: each relay's memory). */
  readonly redisDirectory: boolean
}

export const runRound = (name: RoundName, ctx: RoundContext) =>
  Effect.gen(function*() {
    const kind: RoundKind = roundKinds[name]
    const { redis, prefix, options } = ctx
    const setup = roundSetup(name, kind, ctx)
    const { relays } = setup
    yield* Effect.promise(() => ctx.load.configure(relays.map((r) => r.http)))
    log(`round ${name}: starting ${options.hosts} hosts, ${setup.tunnels} tunnel(s) each, relays ${relays.map((r) => r.name).join(" ")} (${JSON.stringify(kind.settings)})`)
    const fleet = yield* startFleet(setup, ctx)
    yield* Effect.promise(() => waitUntilRegistered(fleet, setup, ctx))
    const entries0 = setup.redisDirectory ? yield* Effect.promise(() => readDirectory(redis, prefix)) : []
    log(`round ${name}: hosts connected (directory entries: ${relays.map((r) => `${r.name} ${setup.redisDirectory ? countOwnedBy(entries0, r.owner) : "in memory"}`).join(", ")}); load ${options.rate} req/s, warm-up ${Math.round(options.warmupMs)} ms`)

    const measured = yield* Effect.promise(() => measureRound(setup, fleet, ctx))

    const fleetReport = yield* Effect.promise(() => fleet.report())
    const stale = setup.redisDirectory
      ? staleEntries(
        yield* Effect.promise(() => readDirectory(redis, prefix)),
        relays.map((r) => ({ owner: r.owner, running: r.isRunning(), spawnedAt: r.currentSpawnedAt() }))
      )
      : []
    const result = roundResult({ setup, spacingMs: options.spacingMs, hosts: options.hosts, idleRssKB: ctx.idleRssKB }, measured, fleetReport, stale)
    logRound(result, measured, fleetReport)
    return result
  }).pipe(Effect.scoped) satisfies Effect.Effect<RoundResult>

const roundSetup = (name: RoundName, kind: RoundKind, ctx: RoundContext): RoundSetup => {
  if (kind.relays === "single") {
    if (ctx.single === undefined) throw new Error(`round ${name} needs relay s, which was not started`)
    return { name, kind, relays: [ctx.single], tunnels: ctx.options.tunnelsFor(kind), redisDirectory: false }
  }
  return { name, kind, relays: ctx.relays, tunnels: ctx.options.tunnelsFor(kind), redisDirectory: true }
}

// --- The steps of a round, in order

/** The round's hosts (real host agents in worker processes), stopped when the round's scope closes. */
const startFleet = (setup: RoundSetup, ctx: RoundContext) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      startHostFleet({
        hostIds: ctx.options.hostIds,
        workers: ctx.options.workers,
        relayUrls: setup.relays.map((r) => r.ws),
        token: ctx.hostToken,
        targetUrl: ctx.targetUrl,
        settings: setup.kind.settings,
        tunnels: setup.tunnels,
        logPrefix: path.join(ctx.logsDir, `hosts-${setup.name}`)
      })
    ),
    (fleet) => Effect.promise(() => fleet.stop())
  )

/**
 * Every host with all its tunnels registered, as the agents see it, and (Redis directory) as the
 * directory says: each host under as many running relays as it has tunnels (at most one per relay).
 */
const waitUntilRegistered = async (fleet: HostFleet, setup: RoundSetup, ctx: RoundContext) => {
  await fleet.allConnected(120_000)
  if (!setup.redisDirectory) return
  const owners = setup.relays.map((r) => r.owner)
  const wanted = Math.min(setup.tunnels, owners.length)
  const deadline = Date.now() + 30_000
  while (true) {
    const hosts = hostsWithOwners(await readDirectory(ctx.redis, ctx.prefix), owners, wanted)
    if (hosts >= ctx.options.hosts) return
    if (Date.now() > deadline) throw new Error(`only ${hosts} of ${ctx.options.hosts} hosts under ${wanted} relay(s) in the directory after 30 s`)
    await sleep(100)
  }
}

/** Load, warm-up, measurement with the restarts inside it, recovery, the relays' memory and holds, and the load generator's report. */
const measureRound = async (setup: RoundSetup, fleet: HostFleet, ctx: RoundContext): Promise<RoundMeasurement> => {
  const { options, load } = ctx
  await load.run()
  await sleep(options.warmupMs)
  const holds = holdTally()
  await Promise.all(setup.relays.map((r) => holds.begin(r.name, r.http)))
  const roundStart = await load.measure()
  fleet.measure()
  const usage = sampleMachine(fleet, setup, ctx)
  await sleep(options.leadMs)
  const restarts = setup.kind.signal === undefined ? noRestarts() : await restartRelays(setup, setup.kind.signal, fleet, holds, ctx)
  const recovered = await waitForRecovery(setup.name, fleet, roundStart, options)
  await sleep(options.settleMs)
  // With every host back: what each relay holds in memory now.
  const relayRssKB = Object.fromEntries(setup.relays.map((r) => [r.name, r.isRunning() ? rssKB(r.pid()!) : 0]))
  await Promise.all(setup.relays.filter((r) => r.isRunning()).map((r) => holds.end(r.name, r.http)))
  const report = await load.end(restarts.signals)
  // Holds a drain ended come after the last read of that process's /metrics: from its log.
  holds.drainedFromLogs(drainedHolds(setup.relays, roundStart, report.measuredTo))
  return { roundStart, ...restarts, recovered, report, relayRssKB, holds: holds.result(), ...usage.stop() }
}

/** Held requests the relays' drains ended (`drain.holds_ended {held}`) within [from, to]. */
const drainedHolds = (relays: ReadonlyArray<RelayInstance>, from: number, to: number) =>
  relays.flatMap((r) => r.logs()).filter((l) => messageOf(l) === "drain.holds_ended").reduce((sum, l) => {
    const at = Date.parse(l.timestamp)
    return at >= from && at <= to ? sum + Number(l.annotations.held ?? 0) : sum
  }, 0)

/** Machine CPU, kernel TCP counters and per-process CPU from now until `stop`. */
const sampleMachine = (fleet: HostFleet, setup: RoundSetup, ctx: RoundContext) => {
  const cpuAtStart = cpuTimes()
  const tcpAtStart = readTcpCounters()
  const processCpu = sampleCpu(() => ({
    ...Object.fromEntries(setup.relays.map((r) => [`relay ${r.name}`, r.pid()])),
    ...Object.fromEntries(fleet.pids.map((pid, i) => [`host worker ${i}`, pid])),
    "load generator": ctx.load.pid,
    "orchestrator + target": process.pid
  }))
  return {
    stop: () => ({ cpuBusy: cpuBusyPercent(cpuAtStart, cpuTimes()), cpuByProcess: processCpu.stop(), tcp: tcpCountersSince(tcpAtStart) })
  }
}

type Restarts = Pick<RoundMeasurement, "timeline" | "stops" | "signals" | "entriesAtExit" | "restartMs" | "gateMs">
/** The steady round's. */
const noRestarts = (): Restarts => ({ timeline: [], stops: [], signals: [], entriesAtExit: {}, restartMs: {}, gateMs: {} })

/**
 * One relay after the other, as a platform rolls a deploy: signal, exit, start on the same port,
 * ready; then, before the next relay, every host back to all its tunnels (at most `--gate` s),
 * as a deploy that checks the relays' tunnels before it moves on.
 */
const restartRelays = async (
  setup: RoundSetup,
  signal: "SIGINT" | "SIGKILL",
  fleet: HostFleet,
  holds: ReturnType<typeof holdTally>,
  ctx: RoundContext
): Promise<Restarts> => {
  const timeline: Array<TimelineEvent> = []
  const stops: Array<RelayStop> = []
  const signals: Array<RelaySignal> = []
  const entriesAtExit: Record<string, number> = {}
  const restartMs: Record<string, number> = {}
  const gateMs: Record<string, number> = {}
  for (const [index, relay] of setup.relays.entries()) {
    // What the process counted: a SIGKILLed one cannot be read afterwards.
    await holds.beforeStop(relay.name, relay.http)
    timeline.push({ at: Date.now(), phase: `${relay.name} ${signal === "SIGINT" ? "draining" : "killed"}` })
    const stop = await relay.stop(signal)
    stops.push(stop)
    signals.push({ relay: index, at: stop.signalAt })
    timeline.push({ at: stop.exitAt, phase: `${relay.name} down` })
    if (setup.redisDirectory) entriesAtExit[relay.name] = countOwnedBy(await readDirectory(ctx.redis, ctx.prefix), relay.owner)
    const start = await relay.start()
    holds.started(relay.name)
    timeline.push({ at: start.listeningAt, phase: `${relay.name} listening, not ready` })
    timeline.push({ at: start.readyAt, phase: `${relay.name} ready` })
    restartMs[relay.name] = start.readyAt - stop.signalAt
    const back = await waitForAllTunnels(fleet, setup, ctx)
    gateMs[relay.name] = back.at - start.readyAt
    if (back.all) timeline.push({ at: back.at, phase: `${relay.name} restarted, every host back` })
    log(`round ${setup.name}: ${relay.name} ${signal} -> exit ${stop.ms} ms (code ${stop.code ?? stop.signal}), left ${entriesAtExit[relay.name] ?? "(memory)"} entries, ready again ${restartMs[relay.name]} ms after the signal, ${back.all ? "every host" : `${fleet.full()} of ${ctx.options.hosts} hosts`} back to ${setup.tunnels} tunnel(s) ${back.at - stop.signalAt} ms after it`)
  }
  return { timeline, stops, signals, entriesAtExit, restartMs, gateMs }
}

/**
 * Until every host has all its tunnels, or `--gate` seconds. The workers' count alone can be
 * stale (a worker whose event loop is busy reports a lost tunnel late), so with the Redis
 * directory it is the directory that says so first: every host under as many running relays as
 * it has tunnels (the restarted relay removed its predecessor's entries before it listened).
 */
const waitForAllTunnels = async (fleet: HostFleet, setup: RoundSetup, ctx: RoundContext) => {
  const hosts = ctx.options.hosts
  const deadline = Date.now() + ctx.options.gate * 1000
  const owners = setup.relays.map((r) => r.owner)
  const wanted = Math.min(setup.tunnels, owners.length)
  const registered = async () =>
    !setup.redisDirectory || hostsWithOwners(await readDirectory(ctx.redis, ctx.prefix), owners, wanted) >= hosts
  let all = false
  while (!(all = (await registered()) && fleet.full() >= hosts) && Date.now() < deadline) await sleep(50)
  return { all, at: Date.now() }
}

/**
 * Measures for --duration at least, and until every host is back to all its tunnels (or the
 * recovery timeout after the restarts passed); whether every host came back.
 */
const waitForRecovery = async (name: RoundName, fleet: HostFleet, roundStart: number, options: GamedayOptions) => {
  const recoveryDeadline = Date.now() + options.recoveryTimeoutMs
  while (Date.now() < recoveryDeadline && (fleet.full() < options.hosts || Date.now() < roundStart + options.duration * 1000)) {
    await sleep(100)
  }
  const recovered = fleet.full() >= options.hosts
  if (!recovered) log(`round ${name}: ${options.hosts - fleet.full()} hosts still without all their tunnels ${options.recoveryTimeoutMs} ms after the restarts`)
  return recovered
}
