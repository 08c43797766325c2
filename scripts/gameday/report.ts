/**
 * What a game day says: progress lines while it runs, each round's result
 * from what was measured, and at the end the JSON file and the tables.
 */
import * as os from "node:os"
import { commit, machine, table, workingTreeDirty, writeResult } from "../lib/bench.js"
import type { DirectoryEntryView } from "./directory-audit.js"
import type { HostFleet } from "./host-fleet.js"
import type { LoadReport } from "./messages.js"
import type { GamedayOptions, RoundKind, RoundName } from "./options.js"
import type { CpuUse } from "./process-cpu.js"
import type { RelayInstance, RelayStop } from "./relay-instance.js"
import { groupFailures, outages, peakPerSecond, summarize, type TimelineEvent, tunnelDowntime } from "./stats.js"
import type { TcpCounters } from "./tcp-counters.js"

const startedAt = Date.now()
/** A progress line, stamped with the time since the game day started. */
export const log = (line: string) => console.log(`[gameday +${((Date.now() - startedAt) / 1000).toFixed(1)}s] ${line}`)

// --- One round

/** What a round measured while the load ran, up to the load generator's report. */
export interface RoundMeasurement {
  readonly roundStart: number
  readonly timeline: ReadonlyArray<TimelineEvent>
  readonly stops: ReadonlyArray<RelayStop>
  /** Per relay: its directory entries left when its process had exited. */
  readonly entriesAtExit: Record<string, number>
  /** Per relay: signal to ready again. */
  readonly restartMs: Record<string, number>
  /** Every host connected again before the recovery timeout. */
  readonly recovered: boolean
  readonly report: LoadReport
  readonly cpuBusy: number
  readonly cpuByProcess: Record<string, CpuUse>
  readonly tcp: TcpCounters
}

export interface RoundResult {
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

const roundDelay = (d: { readonly p99: number; readonly max: number }) => ({ p99: Math.round(d.p99), max: Math.round(d.max) })

/** The round's figures (the JSON's `rounds[]` entry), from the measurement and what was read after it. */
export const roundResult = (
  round: { readonly name: RoundName; readonly kind: RoundKind; readonly spacingMs: number },
  relays: ReadonlyArray<RelayInstance>,
  measured: RoundMeasurement,
  fleetReport: Awaited<ReturnType<HostFleet["report"]>>,
  stale: ReadonlyArray<DirectoryEntryView>
): RoundResult => {
  const { report, roundStart, timeline, stops } = measured
  const roundEnd = report.measuredTo
  const peakByRelay = Object.fromEntries(relays.map((r) => [r.name, peakPerSecond(r.registrations(), roundStart, roundEnd)]))
  const registrationsByRelay = Object.fromEntries(
    relays.map((r) => [r.name, r.registrations().filter((t) => t >= roundStart && t <= roundEnd).length])
  )
  const hostOutages = outages(report.longestGapMs, round.spacingMs)
  return {
    name: round.name,
    requests: report.requests,
    failedRequests: report.failedRequests,
    failedPercent: report.requests === 0 ? 0 : +((100 * report.failedRequests) / report.requests).toFixed(3),
    refusedRetried: report.refusedRetried,
    outageMs: summarize(hostOutages),
    drainMs: stops.map((s) => s.ms),
    staleEntries: stale.length,
    peakRegistrationsPerSec: Math.max(0, ...Object.values(peakByRelay)),
    signal: round.kind.signal ?? "none",
    hostSettings: round.kind.settings,
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
    failureBreakdown: groupFailures(report.failures, timeline, relays.map((r) => r.name), roundStart)
  }
}

/** The round's progress lines: its figures, then the harness's own CPU use. */
export const logRound = (result: RoundResult, measured: RoundMeasurement, fleetReport: Awaited<ReturnType<HostFleet["report"]>>) => {
  const { report, cpuBusy, cpuByProcess, tcp } = measured
  log(
    `round ${result.name}: ${result.requests} requests, ${result.failedRequests} failed, ${result.refusedRetried} refused->retried, outage p99 ${result.outageMs.p99} ms, stale ${result.staleEntries}, peak ${result.peakRegistrationsPerSec} reg/s; machine CPU ${cpuBusy}% busy, event-loop delay max: load ${Math.round(report.eventLoopDelayMs.max)} ms, host workers ${fleetReport.eventLoopDelayMs.map((d) => Math.round(d.max)).join("/")} ms; listen-queue overflows ${tcp.ListenOverflows}`
  )
  log(
    `round ${result.name}: CPU core-seconds (busiest second): ${
      Object.entries(cpuByProcess).map(([p, c]) => `${p} ${c.cpuSeconds} (${c.peakPercent}%)`).join(", ")
    }`
  )
}

// --- The whole game day

/** Writes `gameday-<timestamp>.json` under `--out` and returns its path. */
export const writeGamedayResult = (
  options: GamedayOptions,
  run: { readonly redis: string; readonly logsDir: string },
  rounds: ReadonlyArray<RoundResult>
): string =>
  writeResult(
    "gameday",
    {
      commit: commit(),
      workingTreeDirty: workingTreeDirty(),
      date: new Date().toISOString(),
      machine: machine(),
      hosts: options.hosts,
      rate: options.rate,
      durationS: options.duration,
      hostWorkers: options.workers,
      redis: run.redis,
      requestSpacingPerHostMs: Math.round(options.spacingMs),
      outageDefinition:
        "per host: the longest time without a successful response during the round (last success before the disruption to first success after), minus the normal spacing of requests to one host (requestSpacingPerHostMs); 0 for a host that never missed its turn",
      logsDir: run.logsDir,
      rounds
    },
    options.out
  )

/** One row per round, then each round's failed requests grouped by phase, relay and error. */
export const printTables = (rounds: ReadonlyArray<RoundResult>) => {
  console.log("")
  console.log(table(rounds.map((r) => ({
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
  for (const r of rounds) {
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
}
