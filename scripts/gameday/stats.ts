/**
 * The arithmetic of a game-day round: per-host outage from the load
 * generator's gaps, the peak registration rate from relay log times, and
 * where in the restart sequence each failed request fell.
 */
import { percentile } from "../lib/bench.js"
import type { FailedRequest, TunnelGap } from "./messages.js"

export interface Summary {
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export const summarize = (values: ReadonlyArray<number>): Summary =>
  values.length === 0
    ? { p50: 0, p99: 0, max: 0 }
    : {
      p50: Math.round(percentile(values, 50)),
      p99: Math.round(percentile(values, 99)),
      max: Math.round(values.reduce((a, b) => Math.max(a, b), 0))
    }

/**
 * Per-host outage: the longest time a host went without a successful response
 * (from its last success before the disruption to its first success after),
 * minus the normal spacing of requests to one host (`hosts / rate`), which a
 * host with no outage at all also shows; never below 0. Its resolution is that
 * spacing: one failed request in a row costs about one spacing.
 */
export const outages = (longestGapMs: Record<string, number>, spacingMs: number): ReadonlyArray<number> =>
  Object.values(longestGapMs).map((gap) => Math.max(0, gap - spacingMs))

/** The most events in any one-second window (sliding) among `times` within [from, to]. */
export const peakPerSecond = (times: ReadonlyArray<number>, from: number, to: number): number => {
  const sorted = times.filter((t) => t >= from && t <= to).sort((a, b) => a - b)
  let peak = 0
  let start = 0
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= 1000) start++
    peak = Math.max(peak, end - start + 1)
  }
  return peak
}

/** A moment of the restart sequence; a phase lasts from its event to the next. */
export interface TimelineEvent {
  readonly at: number
  /** The phase that starts here, e.g. "a draining", "a down", "a starting", "a up". */
  readonly phase: string
}

export const phaseAt = (timeline: ReadonlyArray<TimelineEvent>, at: number): string => {
  let phase = "before the restarts"
  for (const event of timeline) if (event.at <= at) phase = event.phase
  return phase
}

export interface FailureGroup {
  readonly phase: string
  readonly relay: string
  readonly kind: string
  readonly retried: boolean
  readonly count: number
  readonly hosts: number
  readonly firstSentAtMs: number
  readonly lastSentAtMs: number
}

/**
 * Failed requests grouped by the phase they were sent in, the relay that gave
 * the failing answer and what the failure was; times relative to `origin`.
 */
export const groupFailures = (
  failures: ReadonlyArray<FailedRequest>,
  timeline: ReadonlyArray<TimelineEvent>,
  relayNames: ReadonlyArray<string>,
  origin: number
): ReadonlyArray<FailureGroup> => {
  const groups = new Map<string, { phase: string; relay: string; kind: string; retried: boolean; count: number; hosts: Set<string>; first: number; last: number }>()
  for (const f of failures) {
    const phase = phaseAt(timeline, f.sentAt)
    const relay = relayNames[f.relay] ?? String(f.relay)
    const key = `${phase}|${relay}|${f.kind}|${f.retried}`
    const group = groups.get(key) ?? { phase, relay, kind: f.kind, retried: f.retried, count: 0, hosts: new Set<string>(), first: f.sentAt, last: f.sentAt }
    group.count++
    group.hosts.add(f.hostId)
    group.first = Math.min(group.first, f.sentAt)
    group.last = Math.max(group.last, f.sentAt)
    groups.set(key, group)
  }
  return [...groups.values()]
    .sort((a, b) => a.first - b.first)
    .map((g) => ({
      phase: g.phase,
      relay: g.relay,
      kind: g.kind,
      retried: g.retried,
      count: g.count,
      hosts: g.hosts.size,
      firstSentAtMs: g.first - origin,
      lastSentAtMs: g.last - origin
    }))
}

/** How long hosts' tunnels were down during [from, to], as the host agents saw it (still down: counted to `to`). */
export const tunnelDowntime = (gaps: ReadonlyArray<TunnelGap>, from: number, to: number) => {
  const inRound = gaps.filter((g) => g.downAt >= from && g.downAt <= to)
  return {
    reconnects: inRound.length,
    stillDown: inRound.filter((g) => g.upAt === undefined).length,
    ms: summarize(inRound.map((g) => (g.upAt ?? to) - g.downAt))
  }
}

/**
 * Per host, the longest time within [from, to] it had no tunnel (`gaps` as the host agents saw
 * them; a gap still open counts to `to`), over `hosts` hosts: a host with no gap counts 0.
 */
export const longestWithoutTunnel = (gaps: ReadonlyArray<TunnelGap>, hosts: number, from: number, to: number): ReadonlyArray<number> => {
  const longest = new Map<string, number>()
  for (const g of gaps) {
    const ms = Math.min(g.upAt ?? to, to) - Math.max(g.downAt, from)
    if (ms > 0 && ms > (longest.get(g.hostId) ?? 0)) longest.set(g.hostId, ms)
  }
  return [...longest.values(), ...Array<number>(Math.max(0, hosts - longest.size)).fill(0)]
}

/**
 * After each signal: how long until every host had all its tunnels again, from `belowAll` gaps:
 * the gaps open at the signal (a host not yet back from an earlier one, when the restarts did not
 * wait for it) and those that began after it, before the next signal (or `to`). 0 when no host
 * was short of a tunnel then, `undefined` when one still was at `to`.
 */
export const backToAllTunnels = (belowAll: ReadonlyArray<TunnelGap>, signalTimes: ReadonlyArray<number>, to: number): ReadonlyArray<number | undefined> =>
  signalTimes.map((at, i) => {
    const until = signalTimes[i + 1] ?? to
    let back: number | undefined = 0
    for (const g of belowAll) {
      if (g.downAt >= until || (g.upAt !== undefined && g.upAt <= at)) continue
      if (g.upAt === undefined) return undefined
      back = Math.max(back, g.upAt - at)
    }
    return back
  })
