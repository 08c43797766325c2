/**
 * bench:forward's HTTP load scenarios (small GETs at c=1 and c=32, 1 MiB POST
 * echo at c=4) and the warm-up before them, by wrk or autocannon (load.ts).
 */
import { Effect } from "effect"
import { runLoad, type LoadSpec, type Tool } from "../load.js"
import type { Reachable, System } from "./systems.js"

export interface Row {
  system: System
  scenario: string
  connections: number
  reqPerSec: number
  p50Ms: number
  p99Ms: number
  errors: number
  tool: Tool | "ws"
}

export const warmupConnections = 8
const mib = Buffer.alloc(1024 * 1024, 97)

export const httpScenarios = [
  { scenario: "small GET", connections: 1, path: "/small" },
  { scenario: "small GET", connections: 32, path: "/small" },
  { scenario: "1 MiB POST echo", connections: 4, path: "/echo", body: mib }
] as const

export const fmt = (n: number | null | undefined, digits: number) => (n === null || n === undefined || !Number.isFinite(n) ? "-" : n.toFixed(digits))

const load = (tool: Tool, spec: LoadSpec, scratchDir: string) => Effect.promise(() => runLoad(tool, spec, scratchDir))

/** `seconds` of load at c=8: about three quarters small GETs, the rest 1 MiB POSTs (whole seconds, as wrk takes them). */
export const warmUp = (tool: Tool, s: Reachable, seconds: number, scratchDir: string) =>
  Effect.gen(function*() {
    if (seconds === 0) return
    const postS = Math.max(1, Math.round(seconds / 4))
    const getS = Math.max(1, seconds - postS)
    const start = Date.now()
    const get = yield* load(tool, { url: `${s.base}/small`, headers: s.headers, connections: warmupConnections, durationS: getS }, scratchDir)
    const post = yield* load(tool, { url: `${s.base}/echo`, headers: s.headers, connections: warmupConnections, durationS: postS, body: mib }, scratchDir)
    console.log(
      `warm-up ${s.system.padEnd(12)} ${((Date.now() - start) / 1000).toFixed(1)} s at c=${warmupConnections}: ` +
        `GET ${get.reqPerSec} req/s (errors ${get.errors}), 1 MiB POST ${post.reqPerSec} req/s (errors ${post.errors})`
    )
  })

/** Every HTTP scenario for `durationS` each, the systems alternating within each. */
export const measureHttp = (tool: Tool, systems: ReadonlyArray<Reachable>, durationS: number, scratchDir: string) =>
  Effect.gen(function*() {
    const rows: Array<Row> = []
    for (const { scenario, connections, path, ...rest } of httpScenarios) {
      const body = "body" in rest ? rest.body : undefined
      for (const s of systems) {
        const figures = yield* load(tool, { url: `${s.base}${path}`, headers: s.headers, connections, durationS, ...(body ? { body } : {}) }, scratchDir)
        const row: Row = { system: s.system, scenario, connections, ...figures, tool }
        console.log(`${row.system.padEnd(12)} ${scenario} c=${connections}: ${row.reqPerSec} req/s, p50 ${fmt(row.p50Ms, 3)} ms, p99 ${fmt(row.p99Ms, 3)} ms, errors ${row.errors}`)
        rows.push(row)
      }
    }
    return rows
  })
