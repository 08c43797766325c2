/**
 * Prints the README's benchmark tables (markdown) from the JSON files the
 * benchmark scripts wrote, so every figure in the README can be traced to a
 * file: `npx tsx scripts/bench-table.ts bench-results/forward-….json
 * bench-results/tunnels-….json bench-results/gameday-….json bench-results/start-….json`.
 * Game days that record tunnels per host (issue 13 onwards) are printed together, last, in one
 * table in the order given, followed by the targets of their two-tunnel drain and sigkill rounds.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { targetsMarkdown } from "./lib/forward/targets.js"

type Json = Record<string, any>

const files = process.argv.slice(2)
if (files.length === 0 || files.includes("--help")) {
  console.log("usage: tsx scripts/bench-table.ts <forward-*.json> <tunnels-*.json> <gameday-*.json> <start-*.json> (any of them)")
  process.exit(files.length === 0 ? 2 : 0)
}

const int = (n: number) => Math.round(n).toLocaleString("en-US")
const ms = (n: number) => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : int(n))

const forward = (d: Json, name: string) => {
  const row = (system: string, scenario: string, c: number) =>
    d.results.find((r: Json) => r.system === system && r.scenario === scenario && r.connections === c)
  const cell = (system: string, scenario: string, c: number) => {
    const r = row(system, scenario, c)
    return r === undefined ? "—" : `${int(r.reqPerSec)} (${ms(r.p50Ms)} / ${ms(r.p99Ms)} ms)`
  }
  console.log(`Forwarding — ${name}: ${d.date}, commit \`${d.commit}\`, ${d.machine}, load by ${d.tool}, ${d.warmupS} s warm-up and ${d.durationS} s per run.`)
  console.log("")
  console.log("| scenario: req/s (p50 / p99) | direct | effect-relay | localtunnel | two node:http proxies |")
  console.log("|---|---|---|---|---|")
  for (const [scenario, c] of [["small GET", 1], ["small GET", 32], ["1 MiB POST echo", 4], ["ws echo round trip", 1]] as const) {
    console.log(`| ${scenario} c=${c} | ${cell("direct", scenario, c)} | ${cell("effect-relay", scenario, c)} | ${cell("localtunnel", scenario, c)} | ${cell("proxy-chain", scenario, c)} |`)
  }
  console.log("")
  console.log("| ratio | effect-relay / direct | effect-relay / localtunnel | effect-relay / proxies | added p50 vs direct |")
  console.log("|---|---|---|---|---|")
  for (const r of d.ratios as Array<Json>) {
    const x = (v: number | null | undefined) => (v === null || v === undefined ? "—" : `${v.toFixed(2)}×`)
    console.log(`| ${r.scenario} | ${x(r.relayVsDirect)} | ${x(r.relayVsLocaltunnel)} | ${x(r.relayVsProxyChain)} | +${r.addedP50Ms.toFixed(3)} ms |`)
  }
  console.log("")
  if (Array.isArray(d.sse) && d.sse.length > 0) {
    const s0 = d.sse[0]
    console.log(`| server-sent events (${s0.events}, one every ${s0.everyMs} ms): lag write → client | p50 | p99 | max |`)
    console.log("|---|---|---|---|")
    const lag = (v: number | null) => (v === null ? "—" : `${v.toFixed(2)} ms`)
    for (const r of d.sse as Array<Json>) console.log(`| ${r.system}${r.error ? ` (${r.error})` : ""} | ${lag(r.lagP50Ms)} | ${lag(r.lagP99Ms)} | ${lag(r.lagMaxMs)} |`)
    console.log("")
  }
  if (Array.isArray(d.transfers) && d.transfers.length > 0) {
    console.log("| transfer | system | MiB/s | byte-identical | processes on the path: peak RSS growth, CPU (% of one core) |")
    console.log("|---|---|---|---|---|")
    for (const r of d.transfers as Array<Json>) {
      const size = r.bytes >= 2 ** 30 ? `${r.bytes / 2 ** 30} GiB` : `${r.bytes / 2 ** 20} MiB`
      const hops = (r.hops as Array<Json>).map((h) => `${h.name} +${h.rssGrowthMB} MB, ${h.cpuPercent}%`).join("; ")
      console.log(`| ${size} ${r.direction} | ${r.system} | ${r.mibPerSec === null ? `— (${r.error})` : r.mibPerSec.toFixed(0)} | ${r.intact ? "yes" : "no"} | ${hops || "—"} |`)
    }
    console.log("")
  }
  if (Array.isArray(d.targets)) {
    console.log("Issue 14's targets, judged by the run itself (`targets` in the JSON):")
    console.log("")
    console.log(targetsMarkdown(d.targets))
    console.log("")
  }
}

const tunnels = (d: Json, name: string) => {
  console.log(`Tunnels — ${name}: ${d.date}, commit \`${d.commit}\`, ${d.machine}.`)
  console.log("")
  console.log("| 10,000 idle tunnels, one relay | measured | target |")
  console.log("|---|---|---|")
  console.log(`| tunnels opened | ${int(d.opened)} of ${int(d.tunnels)} | |`)
  console.log(`| relay RSS before / after | ${d.rssBeforeMB} MB / ${d.rssAfterMB} MB | |`)
  console.log(`| RSS per tunnel | ${d.rssPerTunnelKB} KB | ≤ 30 KB |`)
  console.log(`| signal → every drain frame received | ${int(d.drainFramesMs)} ms | |`)
  console.log(`| signal → last 4001 close | ${int(d.lastCloseMs)} ms | |`)
  console.log(`| directory clear (one EVAL, as the relay measured it) | ${int(d.directoryClearMs)} ms | ≤ 100 ms |`)
  console.log(`| signal → exit | ${int(d.signalToExitMs)} ms, exit code ${d.exitCode} | ≤ 1,500 ms |`)
  console.log(`| close codes seen by the hosts | ${Object.entries(d.closeCodes).map(([k, v]) => `${k} × ${int(v as number)}`).join(", ")} | |`)
  console.log(`| directory entries left for the relay | ${d.leftoverEntries} | 0 |`)
  console.log("")
}

const gameday = (d: Json, name: string) => {
  console.log(`Game day — ${name}: ${d.date}, commit \`${d.commit}\`, ${d.machine}, ${int(d.hosts)} hosts, ${d.rate} req/s, ${d.durationS} s per round.`)
  console.log("")
  console.log("| round | requests | failed | refused, retried | per-host outage p50 / p99 / max | drain (signal → exit) per relay | stale entries | peak registrations/s |")
  console.log("|---|---|---|---|---|---|---|---|")
  for (const r of d.rounds as Array<Json>) {
    const pct = r.requests > 0 ? ((100 * r.failedRequests) / r.requests).toFixed(1) : "0"
    console.log(
      `| ${r.name} | ${int(r.requests)} | ${int(r.failedRequests)} (${pct}%) | ${int(r.refusedRetried)} | ` +
        `${int(r.outageMs.p50)} / ${int(r.outageMs.p99)} / ${int(r.outageMs.max)} ms | ${(r.drainMs as Array<number>).map(int).join(", ")} ms | ${r.staleEntries} | ${r.peakRegistrationsPerSec} |`
    )
  }
  console.log("")
}

/** A figure the JSON may lack (older runs): a dash. */
const opt = (v: unknown, f: (n: number) => string = int) => (typeof v === "number" ? f(v) : "—")

/**
 * The game day with two tunnels per host (rounds carry `tunnels`): one table for every file
 * given, a row per round, then each drain and sigkill round of the two-tunnel runs against the
 * targets of issue 13.
 */
const gamedays = (runs: ReadonlyArray<{ readonly d: Json; readonly name: string }>) => {
  for (const [i, { d, name }] of runs.entries()) {
    const scale = d.hosts === 1000 && d.rate === 500 ? "" : `--hosts ${d.hosts} --rate ${d.rate} `
    console.log(`${i + 1}. ${name}: \`npm run gameday -- ${scale}--tunnels ${d.tunnels} --rounds ${(d.rounds as Array<Json>).map((r) => r.name).join(",")}\`, ${d.date}, commit \`${d.commit}\`${d.workingTreeDirty ? " (uncommitted changes)" : ""}, ${d.machine}, ${int(d.hosts)} hosts, ${d.rate} req/s, ${d.durationS} s per round.`)
  }
  console.log("")
  console.log("| run | round | tunnels per host | requests | failed | retried by the LB (refused / reset) | hosts without a tunnel p99 (max) | latency p99 | in flight at kill | held (released by event / timed out / ended by the drain) | back to all tunnels after each signal | relay RSS per host | peak registrations/s on the survivor (on the restarted relay) |")
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  for (const [i, { d }] of runs.entries()) {
    for (const r of d.rounds as Array<Json>) {
      const pct = r.requests > 0 ? ((100 * r.failedRequests) / r.requests).toFixed(2) : "0"
      const held = r.heldRequests === undefined ? "—" : `${int(r.heldRequests.total)} (${int(r.heldRequests.releasedByEvent)} / ${int(r.heldRequests.timedOut)} / ${opt(r.heldRequests.drained)})`
      const back = r.backToAllTunnelsMs === undefined
        ? "—"
        : Object.entries(r.backToAllTunnelsMs as Record<string, number | null>).map(([relay, v]) => `${relay} ${v === null ? "not all back" : `${int(v)} ms`}`).join(", ")
      const peak = `${r.survivorPeakRegistrationsPerSec === null ? "no survivor" : opt(r.survivorPeakRegistrationsPerSec)} (${opt(r.restartedRelayPeakRegistrationsPerSec)})`
      console.log(
        `| ${i + 1} | ${r.name} | ${r.tunnels} | ${int(r.requests)} | ${int(r.failedRequests)} (${pct}%) | ${int(r.refusedRetried)} / ${opt(r.resetRetried)} | ` +
          `${opt(r.hostsWithoutTunnelMs?.p99)} ms (${opt(r.hostsWithoutTunnelMs?.max)}) | ${int(r.latencyMs.p99)} ms | ${r.signal === "SIGKILL" ? int(r.inFlightAtKill) : "no kill"} | ${held} | ${back} | ${opt(r.rssPerHostKB, (n) => `${n.toFixed(1)} KB`)} | ${peak} |`
      )
    }
  }
  console.log("")
  const checks = runs.flatMap(({ d }, i) =>
    (d.rounds as Array<Json>).filter((r) => r.tunnels >= 2 && (r.name === "drain" || r.name === "sigkill")).map((r) => ({ run: i + 1, r }))
  )
  if (checks.length === 0) return
  const mark = (ok: boolean) => (ok ? "met" : "**missed**")
  console.log("| run | round | failed requests: measured / target | hosts without a tunnel / every host back: measured / target | latency p99: measured / target |")
  console.log("|---|---|---|---|---|")
  for (const { run, r } of checks) {
    const percent = r.requests > 0 ? (100 * r.failedRequests) / r.requests : 0
    if (r.name === "drain") {
      console.log(
        `| ${run} | drain | ${int(r.failedRequests)} / 0: ${mark(r.failedRequests === 0)} | p99 ${int(r.hostsWithoutTunnelMs.p99)} ms / 0 ms: ${mark(r.hostsWithoutTunnelMs.p99 === 0)} | ` +
          `${int(r.latencyMs.p99)} ms / ≤ 1,000 ms: ${mark(r.latencyMs.p99 <= 1000)} |`
      )
    } else {
      const backs = Object.values(r.backToAllTunnelsMs as Record<string, number | null>)
      const worst = backs.some((v) => v === null) ? undefined : Math.max(0, ...(backs as Array<number>))
      const failedOk = r.failedRequests <= r.inFlightAtKill && percent <= 0.5
      console.log(
        `| ${run} | sigkill | ${int(r.failedRequests)} (${percent.toFixed(2)}%) / ≤ ${int(r.inFlightAtKill)} in flight at kill and ≤ 0.5%: ${mark(failedOk)} | ` +
          `${worst === undefined ? "not every host back" : `${int(worst)} ms`} / ≤ 5,000 ms: ${mark(worst !== undefined && worst <= 5000)} | ${int(r.latencyMs.p99)} ms / ≤ 2,000 ms: ${mark(r.latencyMs.p99 <= 2000)} |`
      )
    }
  }
  console.log("")
}

const start = (d: Json, name: string) => {
  console.log(`Start-up — ${name}: ${d.date}, commit \`${d.commit}\`${d.dirty ? " (uncommitted changes)" : ""}, ${d.machine}, ${d.runs} runs each, RSS ${d.settleMs} ms after ready, load average ${d.loadavgBefore[0]} before and ${d.loadavgAfter[0]} after.`)
  console.log("")
  const variants = [...new Set((d.results as Array<Json>).map((r) => r.variant as string))]
  const label: Record<string, string> = { built: "built bins (node)", tsx: "sources under tsx" }
  console.log(`| median (min – max) | ${variants.map((v) => label[v] ?? v).join(" | ")} | target |`)
  console.log(`|---|${variants.map(() => "---|").join("")}---|`)
  for (const metric of [...new Set((d.results as Array<Json>).map((r) => r.metric as string))]) {
    const rows = (d.results as Array<Json>).filter((r) => r.metric === metric)
    const n = (v: number) => (rows[0].unit === "MB" ? v.toFixed(1) : int(v))
    const cell = (r: Json | undefined) => (r === undefined ? "—" : `${n(r.median)} ${r.unit} (${n(r.min)} – ${n(r.max)})${r.met === false ? " ✗" : ""}`)
    console.log(`| ${metric} | ${variants.map((v) => cell(rows.find((r) => r.variant === v))).join(" | ")} | ≤ ${int(rows[0].target)} ${rows[0].unit} |`)
  }
  console.log("")
}

const twoTunnelGamedays: Array<{ d: Json; name: string }> = []
for (const file of files) {
  const d = JSON.parse(fs.readFileSync(file, "utf8")) as Json
  const name = `\`bench-results/${path.basename(file)}\``
  if (Array.isArray(d.rounds) && typeof d.rounds[0]?.tunnels === "number") twoTunnelGamedays.push({ d, name })
  else if (Array.isArray(d.rounds)) gameday(d, name)
  else if ("rssPerTunnelKB" in d) tunnels(d, name)
  else if ("settleMs" in d) start(d, name)
  else if (Array.isArray(d.results)) forward(d, name)
  else console.error(`${file}: not a benchmark result this script knows`)
}
// The game days with tunnels per host, together in one table, in the order given.
if (twoTunnelGamedays.length > 0) gamedays(twoTunnelGamedays)
