/**
 * bench:forward's large transfers: a download and a chunked upload of `bytes`
 * (1 GiB by default) per system, in the testkit's stamped pattern, checked as
 * they arrive (every byte, at its offset: the client checks the download, the
 * target the upload). A transfer is cut when no byte moves for 10 s or when it
 * runs past `timeoutS`. Meanwhile the RSS of every process between client and
 * target is sampled every 50 ms from /proc (peak growth over its value just
 * before the transfer), and their CPU time is read before and after (busy
 * share of the transfer's wall time: is a hop CPU-bound or waiting?).
 */
import { rssBytes, sampleRss, stampedCheck, stampedPiece } from "@effect-relay/testkit"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import { fmt } from "./http-load.js"
import type { Hop, Reachable, System } from "./systems.js"

export type Direction = "download" | "upload"

export interface HopFigures {
  readonly name: string
  readonly rssBeforeMB: number
  readonly rssPeakMB: number
  readonly rssGrowthMB: number
  /** CPU time (user + system) during the transfer over its wall time, in percent of one core. */
  readonly cpuPercent: number
}

export interface TransferRow {
  readonly system: System
  readonly direction: Direction
  readonly bytes: number
  /** Bytes that got through (the client's count for a download, the target's for an upload). */
  readonly bytesMoved: number
  readonly ms: number
  readonly mibPerSec: number | null
  /** Every byte as the pattern says, and exactly `bytes` of them. */
  readonly intact: boolean
  readonly hops: ReadonlyArray<HopFigures>
  /** Why it did not complete, when it did not. */
  readonly error?: string
}

const MiB = 1024 * 1024
const mb = (bytes: number) => +(bytes / MiB).toFixed(1)

/** A process's user + system CPU time so far, in ms (Linux /proc, 100 ticks a second assumed). */
const cpuMs = (pid: number): number => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return NaN
  }
}

interface Outcome {
  readonly bytesMoved: number
  readonly intact: boolean
}

/** A socket with no byte either way for this long is given up on. */
const stallMs = 10_000

/** Cuts `req` once it stalls for `stallMs` or runs past `timeoutMs`, saying how far it got. */
const bound = (req: http.ClientRequest, timeoutMs: number, progress: () => string) => {
  const timer = setTimeout(() => req.destroy(new Error(`not done within ${timeoutMs / 1000} s (${progress()})`)), timeoutMs)
  req.on("close", () => clearTimeout(timer))
  req.setTimeout(stallMs, () => req.destroy(new Error(`stalled: no byte moved for ${stallMs / 1000} s (${progress()})`)))
}

const download = (s: Reachable, bytes: number, timeoutMs: number) =>
  new Promise<Outcome>((resolve, reject) => {
    const check = stampedCheck()
    const req = http.get(`${s.base}/bytes?size=${bytes}&pattern=stamped`, { headers: s.headers, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        return reject(new Error(`status ${res.statusCode}`))
      }
      res.on("data", check.update)
      res.on("error", reject)
      res.on("close", () => {
        if (!res.complete) return reject(new Error(`response cut after ${check.bytes()} bytes`))
        resolve({ bytesMoved: check.bytes(), intact: check.intact(bytes) })
      })
    })
    bound(req, timeoutMs, () => `${(check.bytes() / MiB).toFixed(0)} MiB arrived`)
    req.on("error", reject)
  })

const upload = (s: Reachable, bytes: number, timeoutMs: number) =>
  new Promise<Outcome>((resolve, reject) => {
    let sent = 0
    const req = http.request(
      `${s.base}/upload?check=stamped`,
      { method: "POST", headers: { ...s.headers, "content-type": "application/octet-stream", "transfer-encoding": "chunked" }, agent: false },
      (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (c: string) => (text += c))
        res.on("error", reject)
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}: ${text.slice(0, 200)}`))
          const answer = JSON.parse(text) as { size: number; intact: boolean }
          resolve({ bytesMoved: answer.size, intact: answer.intact && answer.size === bytes })
        })
      }
    )
    bound(req, timeoutMs, () => `${(sent / MiB).toFixed(0)} MiB sent`)
    req.on("error", reject)
    let index = 0
    const more = () => {
      while (sent < bytes && !req.destroyed) {
        const piece = stampedPiece(index++)
        const n = Math.min(piece.length, bytes - sent)
        sent += n
        if (!req.write(n === piece.length ? piece : piece.subarray(0, n))) return req.once("drain", more)
      }
      if (!req.destroyed) req.end()
    }
    more()
  })

const watchHop = (hop: Hop) => {
  const rssBefore = rssBytes(hop.pid) ?? NaN
  const cpuBefore = cpuMs(hop.pid)
  const rss = sampleRss(hop.pid, 50)
  return (elapsedMs: number): HopFigures => {
    rss.stop()
    const peak = Math.max(rss.peak(), rssBytes(hop.pid) ?? 0)
    return {
      name: hop.name,
      rssBeforeMB: mb(rssBefore),
      rssPeakMB: mb(peak),
      rssGrowthMB: mb(peak - rssBefore),
      cpuPercent: Math.round((100 * (cpuMs(hop.pid) - cpuBefore)) / elapsedMs)
    }
  }
}

const transferOne = (s: Reachable, direction: Direction, bytes: number, timeoutS: number) =>
  Effect.promise(async (): Promise<TransferRow> => {
    const hops = s.hops.map(watchHop)
    const start = performance.now()
    let outcome: Outcome = { bytesMoved: 0, intact: false }
    let error: string | undefined
    try {
      outcome = await (direction === "download" ? download : upload)(s, bytes, timeoutS * 1000)
      if (!outcome.intact) error = `not byte-identical (${outcome.bytesMoved} bytes arrived)`
    } catch (e) {
      error = e instanceof Error ? e.message : String(e)
    }
    const ms = performance.now() - start
    return {
      system: s.system,
      direction,
      bytes,
      bytesMoved: outcome.bytesMoved,
      ms: Math.round(ms),
      mibPerSec: error === undefined ? +(bytes / MiB / (ms / 1000)).toFixed(1) : null,
      intact: outcome.intact,
      hops: hops.map((stop) => stop(ms)),
      ...(error !== undefined ? { error } : {})
    }
  })

/** Downloads through every system in turn, then uploads. */
export const measureTransfers = (systems: ReadonlyArray<Reachable>, bytes: number, timeoutS: number) =>
  Effect.gen(function*() {
    const rows: Array<TransferRow> = []
    for (const direction of ["download", "upload"] as const) {
      for (const s of systems) {
        const row = yield* transferOne(s, direction, bytes, timeoutS)
        const hops = row.hops.map((h) => `${h.name} +${h.rssGrowthMB} MB RSS, ${h.cpuPercent}% CPU`).join("; ")
        console.log(
          `${row.system.padEnd(12)} ${(bytes / MiB).toFixed(0)} MiB ${direction}: ${fmt(row.mibPerSec, 1)} MiB/s in ${row.ms} ms, ` +
            `${row.intact ? "byte-identical" : "NOT intact"}${row.error ? ` (${row.error})` : ""}${hops ? `; ${hops}` : ""}`
        )
        rows.push(row)
      }
    }
    return rows
  })
