/**
 * Issue 14's targets for bench:forward, judged from one run's figures: which
 * are met, and by how much each is met or missed. The run's JSON keeps the
 * verdicts (`targets`); the printed summary and scripts/bench-table.ts render
 * them the same way (`targetsMarkdown`).
 */
import type { Row } from "./http-load.js"
import type { SseRow } from "./sse.js"
import type { System } from "./systems.js"
import type { Direction, TransferRow } from "./transfer.js"

export interface TargetVerdict {
  readonly scenario: string
  readonly target: string
  /** What each system measured, as printed. */
  readonly effectRelay: string
  readonly proxyChain: string
  readonly localtunnel: string
  /** null: it could not be judged (a figure is missing). */
  readonly met: boolean | null
  /** "met by ...", "missed by ...", or why it could not be judged. */
  readonly margin: string
}

export interface RunFigures {
  readonly results: ReadonlyArray<Row>
  readonly sse: ReadonlyArray<SseRow>
  readonly transfers: ReadonlyArray<TransferRow>
}

/** A peak RSS growth each of the relay and the agent must stay within, per transfer (MB). */
export const rssGrowthLimitMB = 32
/** The most an SSE event may lag behind its writing (ms). */
export const sseLagLimitMs = 5
/** The most a WebSocket echo round trip may add to the direct one at p50 (ms). */
export const wsAddedP50LimitMs = 0.25
/** A large transfer's throughput against the two-proxy chain's, at least. */
export const transferRatioLimit = 0.5

const int = (n: number) => Math.round(n).toLocaleString("en-US")
const ms = (n: number) => `${n.toFixed(2)} ms`
const pct = (a: number, b: number) => `${Math.abs(Math.round((100 * (a - b)) / b))}%`
const notJudged = (why: string) => ({ met: null, margin: `not judged: ${why}` })

const ratioVerdict = (relay: number | undefined, chain: number | undefined, limit: number, unit: string) => {
  if (relay === undefined || chain === undefined || chain <= 0) return notJudged("a figure is missing")
  const ratio = relay / chain
  const met = ratio >= limit
  const gap = `${int(Math.abs(relay - limit * chain))} ${unit}, ${pct(ratio, limit)}`
  return { met, margin: `${ratio.toFixed(2)}× the chain (${met ? `met: ${gap} above` : `missed: ${gap} short of`} ${limit}×)` }
}

const atMostVerdict = (value: number | null | undefined, limit: number, what: string) => {
  if (value === null || value === undefined || !Number.isFinite(value)) return notJudged(`no ${what}`)
  const met = value <= limit
  return { met, margin: `${met ? "met by" : "missed by"} ${ms(Math.abs(limit - value))}` }
}

const all = (verdicts: ReadonlyArray<{ met: boolean | null; margin: string }>) => ({
  met: verdicts.some((v) => v.met === null) ? null : verdicts.every((v) => v.met),
  margin: verdicts.map((v) => v.margin).join("; ")
})

/** Every target of issue 14 against one run's figures. */
export const judgeTargets = (run: RunFigures): Array<TargetVerdict> => {
  const http = (system: System, scenario: string, c: number) => run.results.find((r) => r.system === system && r.scenario === scenario && r.connections === c)
  const sse = (system: System) => run.sse.find((r) => r.system === system)
  const transfer = (system: System, direction: Direction) => run.transfers.find((r) => r.system === system && r.direction === direction)
  const rate = (system: System, scenario: string, c: number) => {
    const r = http(system, scenario, c)
    return r === undefined ? "–" : `${int(r.reqPerSec)} req/s${r.errors > 0 ? ` (${r.errors} errors)` : ""}`
  }
  const added = (system: System, scenario: string, c: number) => {
    const r = http(system, scenario, c)
    const d = http("direct", scenario, c)
    return r === undefined || d === undefined ? undefined : r.p50Ms - d.p50Ms
  }
  const addedCell = (system: System, scenario: string, c: number) => {
    const a = added(system, scenario, c)
    return a === undefined ? "–" : `+${a.toFixed(3)} ms (p50 ${ms(http(system, scenario, c)!.p50Ms)})`
  }
  const lagCell = (system: System) => {
    const r = sse(system)
    if (r === undefined) return "–"
    if (r.lagP50Ms === null) return `– (${r.error})`
    return `p50 ${ms(r.lagP50Ms)}, p99 ${ms(r.lagP99Ms!)}, max ${ms(r.lagMaxMs!)}${r.error ? ` (${r.error})` : ""}`
  }
  const transferCell = (system: System, direction: Direction) => {
    const r = transfer(system, direction)
    if (r === undefined) return "–"
    if (r.mibPerSec === null) return `– (${r.error})`
    const rss = r.hops.map((h) => `${h.name} +${h.rssGrowthMB} MB`).join(", ")
    return `${r.mibPerSec.toFixed(0)} MiB/s, ${r.intact ? "byte-identical" : "NOT byte-identical"}${rss ? `; peak RSS growth ${rss}` : ""}`
  }

  const verdicts: Array<TargetVerdict> = []
  const add = (scenario: string, target: string, cells: (s: System) => string, verdict: { met: boolean | null; margin: string }) =>
    verdicts.push({ scenario, target, effectRelay: cells("effect-relay"), proxyChain: cells("proxy-chain"), localtunnel: cells("localtunnel"), ...verdict })

  add("small GET c=32", "≥ 1.0× the two-proxy chain's req/s", (s) => rate(s, "small GET", 32),
    ratioVerdict(http("effect-relay", "small GET", 32)?.reqPerSec, http("proxy-chain", "small GET", 32)?.reqPerSec, 1, "req/s"))
  const relayAdded = added("effect-relay", "small GET", 1)
  const chainAdded = added("proxy-chain", "small GET", 1)
  add("small GET c=1", "added p50 ≤ the two-proxy chain's", (s) => addedCell(s, "small GET", 1),
    chainAdded === undefined ? notJudged("no chain figure") : atMostVerdict(relayAdded, chainAdded, "added p50"))
  add("1 MiB POST echo c=4", "≥ 1.0× the two-proxy chain's req/s", (s) => rate(s, "1 MiB POST echo", 4),
    ratioVerdict(http("effect-relay", "1 MiB POST echo", 4)?.reqPerSec, http("proxy-chain", "1 MiB POST echo", 4)?.reqPerSec, 1, "req/s"))
  add("WebSocket echo round trip", `added p50 ≤ ${wsAddedP50LimitMs} ms`,
    (s) => (s === "effect-relay" ? addedCell(s, "ws echo round trip", 1) : "– (not carried in this benchmark)"),
    atMostVerdict(added("effect-relay", "ws echo round trip", 1), wsAddedP50LimitMs, "added p50"))
  const relaySse = sse("effect-relay")
  add("server-sent events", `every event ≤ ${sseLagLimitMs} ms after the target wrote it (max lag)`, lagCell,
    relaySse?.error !== undefined ? { met: false, margin: `missed: ${relaySse.error}` } : atMostVerdict(relaySse?.lagMaxMs, sseLagLimitMs, "lag"))
  for (const direction of ["download", "upload"] as const) {
    const relay = transfer("effect-relay", direction)
    const chain = transfer("proxy-chain", direction)
    const gib = relay === undefined ? "" : relay.bytes >= 2 ** 30 ? `${relay.bytes / 2 ** 30} GiB` : `${relay.bytes / 2 ** 20} MiB`
    const growth = (hop: string) => {
      const h = relay?.hops.find((x) => x.name === hop)
      if (h === undefined) return notJudged(`no ${hop} RSS`)
      const met = h.rssGrowthMB <= rssGrowthLimitMB
      return { met, margin: `${hop} +${h.rssGrowthMB} MB (${met ? "met by" : "missed by"} ${Math.abs(rssGrowthLimitMB - h.rssGrowthMB).toFixed(1)} MB)` }
    }
    add(`${gib} ${direction}`, `byte-identical, ≥ ${transferRatioLimit}× the chain's MiB/s, relay and agent peak RSS growth ≤ ${rssGrowthLimitMB} MB each`,
      (s) => transferCell(s, direction),
      relay === undefined
        ? notJudged("not run")
        : all([
          relay.intact ? { met: true, margin: "byte-identical" } : { met: false, margin: `not byte-identical: ${relay.error}` },
          ratioVerdict(relay.mibPerSec ?? 0, chain?.mibPerSec ?? undefined, transferRatioLimit, "MiB/s"),
          growth("relay"),
          growth("agent")
        ]))
  }
  return verdicts
}

const verdictCell = (v: TargetVerdict) => `${v.met === null ? "?" : v.met ? "**met**" : "**missed**"}: ${v.margin}`

/** The targets as a markdown table. */
export const targetsMarkdown = (verdicts: ReadonlyArray<TargetVerdict>): string =>
  [
    "| scenario | target | effect-relay | two-proxy chain | localtunnel | verdict |",
    "|---|---|---|---|---|---|",
    ...verdicts.map((v) => `| ${v.scenario} | ${v.target} | ${v.effectRelay} | ${v.proxyChain} | ${v.localtunnel} | ${verdictCell(v)} |`)
  ].join("\n")

/** The targets for a terminal: one block per target. */
export const targetsText = (verdicts: ReadonlyArray<TargetVerdict>): string =>
  verdicts.map((v) =>
    [
      `${v.met === null ? "?   " : v.met ? "MET " : "MISS"} ${v.scenario}: ${v.target}`,
      `     effect-relay ${v.effectRelay}`,
      `     proxy-chain  ${v.proxyChain}`,
      `     localtunnel  ${v.localtunnel}`,
      `     ${v.margin}`
    ].join("\n")
  ).join("\n")
