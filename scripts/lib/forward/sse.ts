/**
 * bench:forward's server-sent events: the target writes `events` events, one
 * every `everyMs`, each carrying the time it was written (`wallClockMs`, which
 * processes on one machine share); the client notes when each one arrives. The
 * lag is arrival minus writing, per event: p50, p99 and max per system.
 */
import { wallClockMs } from "@effect-relay/testkit"
import { Effect } from "effect"
import * as http from "node:http"
import { percentile } from "../bench.js"
import { fmt } from "./http-load.js"
import type { Reachable, System } from "./systems.js"

export interface SseRow {
  readonly system: System
  readonly events: number
  readonly everyMs: number
  readonly received: number
  readonly lagP50Ms: number | null
  readonly lagP99Ms: number | null
  readonly lagMaxMs: number | null
  /** Why not every event arrived, when one did not. */
  readonly error?: string
}

/** The lag of each event (ms), in the order they arrived; rejects on an error or after `timeoutMs`. */
const eventLags = (s: Reachable, events: number, everyMs: number, timeoutMs: number) =>
  new Promise<Array<number>>((resolve, reject) => {
    const lags: Array<number> = []
    const req = http.get(`${s.base}/sse?n=${events}&every=${everyMs}`, { headers: s.headers, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        return reject(new Error(`status ${res.statusCode}`))
      }
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        const at = wallClockMs()
        text += chunk
        let end: number
        while ((end = text.indexOf("\n\n")) !== -1) {
          const writtenAt = Number(text.slice(0, end).split(" ")[2])
          lags.push(at - writtenAt)
          text = text.slice(end + 2)
        }
      })
      res.on("end", () => resolve(lags))
      res.on("error", reject)
    })
    req.on("error", reject)
    const timer = setTimeout(() => req.destroy(new Error(`not done within ${timeoutMs} ms (${lags.length} events arrived)`)), timeoutMs)
    req.on("close", () => clearTimeout(timer))
  })

const measureOne = (s: Reachable, events: number, everyMs: number) =>
  Effect.promise(async (): Promise<SseRow> => {
    let lags: Array<number> = []
    let error: string | undefined
    try {
      lags = await eventLags(s, events, everyMs, events * everyMs + 10_000)
      if (lags.length !== events) error = `${lags.length} of ${events} events arrived`
    } catch (e) {
      error = e instanceof Error ? e.message : String(e)
    }
    const figure = (p: number) => (lags.length === 0 ? null : +percentile(lags, p).toFixed(3))
    return {
      system: s.system,
      events,
      everyMs,
      received: lags.length,
      lagP50Ms: figure(50),
      lagP99Ms: figure(99),
      lagMaxMs: figure(100),
      ...(error !== undefined ? { error } : {})
    }
  })

/** SSE through every system in turn. */
export const measureSse = (systems: ReadonlyArray<Reachable>, events: number, everyMs: number) =>
  Effect.gen(function*() {
    const rows: Array<SseRow> = []
    for (const s of systems) {
      const row = yield* measureOne(s, events, everyMs)
      console.log(
        `${row.system.padEnd(12)} sse ${events} events every ${everyMs} ms: lag p50 ${fmt(row.lagP50Ms, 3)} ms, p99 ${fmt(row.lagP99Ms, 3)} ms, max ${fmt(row.lagMaxMs, 3)} ms` +
          (row.error ? ` (${row.error})` : "")
      )
      rows.push(row)
    }
    return rows
  })
