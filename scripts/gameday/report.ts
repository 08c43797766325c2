/**
 * What a game day says: progress lines while it runs, each round's result
 * from what was measured, and at the end the JSON file and the tables.
 */
import * as os from "node:os"
import { commit, machine, table, workingTreeDirty, writeResult } from "../lib/bench.js"
import type { DirectoryEntryView } from "./directory-audit.js"
import type { HostFleet } from "./host-fleet.js"
import type { LoadReport, RelaySignal } from "./messages.js"
import type { GamedayOptions, RoundName } from "./options.js"
import type { CpuUse } from "./process-cpu.js"
import type { RelayStop } from "./relay-instance.js"
import type { holdTally } from "./relay-metrics.js"
import type { RoundSetup } from "./round.js"
import {
  backToAllTunnels,
  groupFailures,
  longestWithoutTunnel,
  outages,
  peakPerSecond,
  summarize,
  type Summary,
  type TimelineEvent,
  tunnelDowntime
} from "./stats.js"
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
  /** Each stop's signal (relay index in the round's relays, time), for the load generator. */
  readonly signals: ReadonlyArray<RelaySignal>
  /** Per relay: from ready again to every host back to all its tunnels (or the gate's end). */
  readonly gateMs: Record<string, number>
  /** Per relay: its RSS (KB) at the end of the round, every host back. */
  readonly relayRssKB: Record<string, number>
  readonly holds: ReturnType<ReturnType<typeof holdTally>["result"]>
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
  /** Tunnels per host agent in this round. */
  readonly tunnels: number
  readonly requests: number
  readonly failedRequests: number
  readonly failedPercent: number
  readonly refusedRetried: number
  readonly resetRetried: number
  /** Per host, the longest time with zero tunnels registered (host agents' view), over every host. */
  readonly hostsWithoutTunnelMs: Summary
  /** Requests the load generator had in flight to a relay when it was SIGKILLed, summed over the kills (0 without a SIGKILL). */
  readonly inFlightAtKill: number
  /** Holds that ended during the round, from the relays' relay_holds_total (every relay, every process). */
  readonly heldRequests: {
    readonly total: number
    readonly releasedByEvent: number
    readonly timedOut: number
    readonly refused: number
    readonly drained: number
  }
  /** Per signalled relay: signal to every host back to all its tunnels (null: not all back by the round's end). */
  readonly backToAllTunnelsMs: Record<string, number | null>
  /** Relays' RSS over their idle RSS, per host, at the end of the round (every host back). */
  readonly rssPerHostKB: number
  readonly outageMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly drainMs: ReadonlyArray<number>
  readonly staleEntries: number
  readonly peakRegistrationsPerSec: number
  /** Host-side view: how long hosts had fewer than all their tunnels (a tunnel's end to every one registered again). */
  readonly tunnelDowntime: ReturnType<typeof tunnelDowntime>
  readonly machineCpuBusyPercent: number
  readonly failureBreakdown: ReturnType<typeof groupFailures>
  /** More detail for whoever reads the JSON (timeline, per-relay figures, harness health). */
  readonly [detail: string]: unknown
}

const roundDelay = (d: { readonly p99: number; readonly max: number }) => ({ p99: Math.round(d.p99), max: Math.round(d.max) })

/** The round's figures (the JSON's `rounds[]` entry), from the measurement and what was read after it. */
export const roundResult = (
  round: { readonly setup: RoundSetup; readonly spacingMs: number; readonly hosts: number; readonly idleRssKB: Record<string, number> },
  measured: RoundMeasurement,
  fleetReport: Awaited<ReturnType<HostFleet["report"]>>,
  stale: ReadonlyArray<DirectoryEntryView>
): RoundResult => {
  const { report, roundStart, timeline, stops, signals } = measured
  const { setup } = round
  const relays = setup.relays
  const roundEnd = report.measuredTo
  const peakByRelay = Object.fromEntries(relays.map((r) => [r.name, peakPerSecond(r.registrations(), roundStart, roundEnd)]))
  const registrationsByRelay = Object.fromEntries(
    relays.map((r) => [r.name, r.registrations().filter((t) => t >= roundStart && t <= roundEnd).length])
  )
  const hostOutages = outages(report.longestGapMs, round.spacingMs)
  const back = backToAllTunnels(fleetReport.belowAll, signals.map((s) => s.at), roundEnd)
  const backByRelay = Object.fromEntries(signals.map((s, i) => [relays[s.relay]!.name, back[i] ?? null]))
  const inFlightByRelay = Object.fromEntries(signals.map((s, i) => [relays[s.relay]!.name, report.inFlightAtSignal[i] ?? 0]))
  // Registrations per second at the peak, from each signal until every host was back (or the next
  // signal): on the relays that stayed up (the survivors) and on the one that was restarted.
  const windows = signals.map((s, i) => ({ relay: s.relay, from: s.at, to: s.at + (back[i] ?? (signals[i + 1]?.at ?? roundEnd) - s.at) }))
  const peakIn = (pick: (relay: number, signalled: number) => boolean) =>
    Math.max(0, ...windows.flatMap((w) => relays.flatMap((r, j) => (pick(j, w.relay) ? [peakPerSecond(r.registrations(), w.from, w.to)] : []))))
  const rssPerHostKB = relays.reduce((sum, r) => sum + Math.max(0, (measured.relayRssKB[r.name] ?? 0) - (round.idleRssKB[r.name] ?? 0)), 0) / round.hosts
  const { failedReads, ...heldRequests } = measured.holds
  return {
    name: setup.name,
    tunnels: setup.tunnels,
    requests: report.requests,
    failedRequests: report.failedRequests,
    failedPercent: report.requests === 0 ? 0 : +((100 * report.failedRequests) / report.requests).toFixed(3),
    refusedRetried: report.refusedRetried,
    resetRetried: report.resetRetried,
    hostsWithoutTunnelMs: summarize(longestWithoutTunnel(fleetReport.gaps, round.hosts, roundStart, roundEnd)),
    inFlightAtKill: setup.kind.signal === "SIGKILL" ? report.inFlightAtSignal.reduce((a, b) => a + b, 0) : 0,
    heldRequests,
    backToAllTunnelsMs: backByRelay,
    rssPerHostKB: +rssPerHostKB.toFixed(1),
    survivorPeakRegistrationsPerSec: relays.length > 1 ? peakIn((j, signalled) => j !== signalled) : null,
    restartedRelayPeakRegistrationsPerSec: peakIn((j, signalled) => j === signalled),
    relays: relays.map((r) => r.name),
    directory: setup.redisDirectory ? "redis" : "memory",
    inFlightAtSignal: inFlightByRelay,
    heldRequestsUnreadScrapes: failedReads,
    relayRssMB: Object.fromEntries(relays.map((r) => [r.name, +((measured.relayRssKB[r.name] ?? 0) / 1024).toFixed(1)])),
    relayIdleRssMB: Object.fromEntries(relays.map((r) => [r.name, +((round.idleRssKB[r.name] ?? 0) / 1024).toFixed(1)])),
    readyToEveryHostBackMs: measured.gateMs,
    hostsWithoutTunnel: new Set(fleetReport.gaps.filter((g) => g.downAt <= roundEnd && (g.upAt ?? roundEnd) >= roundStart).map((g) => g.hostId)).size,
    outageMs: summarize(hostOutages),
    drainMs: stops.map((s) => s.ms),
    staleEntries: stale.length,
    peakRegistrationsPerSec: Math.max(0, ...Object.values(peakByRelay)),
    signal: setup.kind.signal ?? "none",
    hostSettings: setup.kind.settings,
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
    tunnelDowntime: tunnelDowntime(fleetReport.belowAll, roundStart, roundEnd),
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
    failureBreakdown: groupFailures(report.failures, timeline, relays.map((r) => r.name), roundStart),
    // Successful requests over 1 s, grouped the same way (by the phase they were sent in).
    slowBreakdown: groupFailures(report.slow, timeline, relays.map((r) => r.name), roundStart),
    slowDropped: report.slowDropped
  }
}

/** The round's progress lines: its figures, then the harness's own CPU use. */
export const logRound = (result: RoundResult, measured: RoundMeasurement, fleetReport: Awaited<ReturnType<HostFleet["report"]>>) => {
  const { report, cpuBusy, cpuByProcess, tcp } = measured
  log(
    `round ${result.name}: ${result.requests} requests, ${result.failedRequests} failed, ${result.refusedRetried}+${result.resetRetried} refused/reset->retried, in flight at kill ${result.inFlightAtKill}, held ${result.heldRequests.total} (${result.heldRequests.releasedByEvent} released, ${result.heldRequests.timedOut} timed out), without a tunnel p99 ${result.hostsWithoutTunnelMs.p99} ms, back to ${result.tunnels} tunnel(s) ${JSON.stringify(result.backToAllTunnelsMs)} ms, RSS/host ${result.rssPerHostKB} KB, outage p99 ${result.outageMs.p99} ms, stale ${result.staleEntries}, peak ${result.peakRegistrationsPerSec} reg/s; machine CPU ${cpuBusy}% busy, event-loop delay max: load ${Math.round(report.eventLoopDelayMs.max)} ms, host workers ${fleetReport.eventLoopDelayMs.map((d) => Math.round(d.max)).join("/")} ms; listen-queue overflows ${tcp.ListenOverflows}`
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
      tunnels: options.tunnels,
      rate: options.rate,
      gateS: options.gate,
      durationS: options.duration,
      hostWorkers: options.workers,
      redis: run.redis,
      requestSpacingPerHostMs: Math.round(options.spacingMs),
      outageDefinition:
        "per host: the longest time without a successful response during the round (last success before the disruption to first success after), minus the normal spacing of requests to one host (requestSpacingPerHostMs); 0 for a host that never missed its turn",
      definitions: {
        hostsWithoutTunnelMs:
          "per host, the longest time during the round with zero tunnels registered, as its host agent saw it (HostAgent.tunnels: a session is Connected once its relay registered it and said hello), from the moment its last tunnel ended to the moment one was registered again; p50/p99/max over every host, hosts that always had one count 0",
        inFlightAtKill:
          "per SIGKILL, the attempts (first tries and load-balancer retries) the load generator had sent to the killed relay (http.request called) and not yet seen end (response complete, error or timeout) at the moment the orchestrator sent the signal; summed over the round's kills. Requests that reached the other relay are not counted, nor requests the other relay was proxying to the killed one",
        heldRequests:
          "holds that ended during the round by outcome, from relay_holds_total{outcome} on every relay's /metrics, read at the start of the measurement, just before each signal and at the end (each process counts from 0); holds a drain ends after that last read are taken from the relay's drain.holds_ended log line (drained); holds open when a relay is SIGKILLed are lost with it and not counted",
        backToAllTunnelsMs:
          "per signalled relay: from the signal until every host short of a tunnel at the signal or after it (before the next signal) had all its tunnels registered again, host agents' view; null if one had not by the end of the round",
        rssPerHostKB:
          "sum over the round's relays of (RSS at the end of the round, every host back, minus the relay's RSS when it had just started with no host), divided by the hosts",
        survivorPeakRegistrationsPerSec:
          "most tunnel.registered log lines in any one-second window on the relays not signalled, from a signal until every host was back; restartedRelayPeakRegistrationsPerSec the same on the relay that was restarted",
        retries:
          "refusedRetried / resetRetried: requests whose first relay refused the connection / reset or closed it before any response byte, sent once more to the other relay (not failed unless the retry failed)"
      },
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
    tunnels: r.tunnels,
    requests: r.requests,
    failed: `${r.failedRequests} (${r.failedPercent}%)`,
    "retried refused/reset": `${r.refusedRetried} / ${r.resetRetried}`,
    "no tunnel p50/p99/max ms": `${r.hostsWithoutTunnelMs.p50} / ${r.hostsWithoutTunnelMs.p99} / ${r.hostsWithoutTunnelMs.max}`,
    "latency p99 ms": Math.round((r.latencyMs as { p99: number }).p99),
    "in flight at kill": r.inFlightAtKill,
    "held (event/timeout)": `${r.heldRequests.total} (${r.heldRequests.releasedByEvent}/${r.heldRequests.timedOut})`,
    "back to N ms": Object.values(r.backToAllTunnelsMs).map((v) => v ?? "never").join(" / "),
    "outage p99 ms": r.outageMs.p99,
    "drain ms": r.drainMs.join(" / "),
    stale: r.staleEntries,
    "RSS/host KB": r.rssPerHostKB,
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
  for (const r of rounds) {
    const groups = (r.slowBreakdown ?? []) as ReturnType<typeof groupFailures>
    if (groups.length === 0) continue
    console.log(`\n${r.name}: successful requests over 1 s by phase (sent at), relay that answered, latency`)
    console.log(table(groups.slice(0, 15).map((g) => ({
      phase: g.phase,
      relay: g.relay,
      latency: `${g.kind}${g.retried ? " (retried)" : ""}`,
      count: g.count,
      hosts: g.hosts,
      "sent at ms": `${g.firstSentAtMs}..${g.lastSentAtMs}`
    }))))
    if (groups.length > 15) console.log(`... ${groups.length - 15} more groups in the JSON`)
  }
}
