/**
 * wrk (https://github.com/wg/wrk) for the benchmarks: its arguments, the Lua
 * script for a request with a body, and parsing of its `--latency` report.
 * Node built-ins only, so a test can import it.
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** Whether an executable `wrk` is on PATH. */
export const wrkOnPath = (): boolean =>
  (process.env.PATH ?? "").split(path.delimiter).some((dir) => {
    if (dir === "") return false
    try {
      fs.accessSync(path.join(dir, "wrk"), fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  })

export interface LoadFigures {
  readonly reqPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses. */
  readonly errors: number
}

const msPer: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** A wrk duration as printed ("38.12us", "1.20ms", "2.01s", "1.00m") in milliseconds. */
export const wrkTimeMs = (text: string): number => {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim())
  if (!match) throw new Error(`not a wrk time: "${text}"`)
  return Number(match[1]) * msPer[match[2]!]!
}

/** Reads requests/sec, p50 and p99 (ms, 3 decimals) and errors from wrk's output with `--latency`. */
export const parseWrk = (output: string): LoadFigures => {
  const percentile = (p: number) => {
    const match = new RegExp(`^\\s*${p}%\\s+(\\S+)\\s*$`, "m").exec(output)
    if (!match) throw new Error(`no ${p}% line in wrk's output (run with --latency):\n${output}`)
    return +wrkTimeMs(match[1]!).toFixed(3)
  }
  const rate = /^Requests\/sec:\s+([\d.]+)\s*$/m.exec(output)
  if (!rate) throw new Error(`no Requests/sec in wrk's output:\n${output}`)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output)
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output)
  const socketErrors = socket ? socket.slice(1, 5).reduce((sum, n) => sum + Number(n), 0) : 0
  return {
    reqPerSec: Math.round(Number(rate[1])),
    p50Ms: percentile(50),
    p99Ms: percentile(99),
    errors: socketErrors + (non2xx ? Number(non2xx[1]) : 0)
  }
}

/**
 * A header name as wrk needs it: wrk only adds its own `Host` when `Host` (exactly
 * so) is absent, so `host: x` would send two Host headers.
 */
export const wrkHeaderName = (name: string) => name.split("-").map((w) => w.charAt(0).toUpperCase() + w.slice(1).toLowerCase()).join("-")

export interface WrkRun {
  readonly url: string
  readonly headers: Record<string, string>
  readonly connections: number
  readonly durationS: number
  /** A Lua script (see bodyScript), for requests with a body. */
  readonly script?: string
  readonly timeoutS?: number
}

/** One thread (the machine has two cores, the systems under test need them), `connections` connections. */
export const wrkArgs = (run: WrkRun): Array<string> => [
  "-t", "1",
  "-c", String(run.connections),
  "-d", `${Math.max(1, Math.round(run.durationS))}s`,
  "--timeout", `${run.timeoutS ?? 10}s`,
  "--latency",
  ...Object.entries(run.headers).flatMap(([name, value]) => ["-H", `${wrkHeaderName(name)}: ${value}`]),
  ...(run.script ? ["-s", run.script] : []),
  run.url
]

/** Writes `body` and a Lua script sending it with `method` into `dir`; returns the script's path. */
export const bodyScript = (dir: string, name: string, method: string, body: Buffer, contentType = "application/octet-stream"): string => {
  const bodyFile = path.join(dir, `${name}.body`)
  const script = path.join(dir, `${name}.lua`)
  fs.writeFileSync(bodyFile, body)
  fs.writeFileSync(
    script,
    [
      `local f = assert(io.open(${JSON.stringify(bodyFile)}, "rb"))`,
      `wrk.body = f:read("*a")`,
      `f:close()`,
      `wrk.method = ${JSON.stringify(method)}`,
      `wrk.headers["Content-Type"] = ${JSON.stringify(contentType)}`,
      ""
    ].join("\n")
  )
  return script
}
