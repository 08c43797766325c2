/**
 * Small helpers the benchmark scripts share: flags, percentiles, the commit,
 * a table printer, and writing results under bench-results/.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

/** `--name value` flags with numeric or string defaults; `--help` prints `help` (if any) and the flags. */
export const flags = <T extends Record<string, number | string>>(defaults: T, argv = process.argv.slice(2), help?: string): T => {
  const out: Record<string, number | string> = { ...defaults }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") {
      if (help !== undefined) console.log(help)
      console.log(`flags (defaults): ${Object.entries(defaults).map(([k, v]) => `--${k} ${v}`).join("  ")}`)
      process.exit(0)
    }
    if (!arg.startsWith("--")) continue
    const name = arg.slice(2)
    if (!(name in defaults)) throw new Error(`unknown flag ${arg}; known: ${Object.keys(defaults).map((k) => `--${k}`).join(" ")}`)
    const value = argv[++i]
    if (value === undefined) throw new Error(`${arg} needs a value`)
    if (typeof defaults[name] === "number" && !Number.isFinite(Number(value))) throw new Error(`${arg} needs a number, got ${value}`)
    out[name] = typeof defaults[name] === "number" ? Number(value) : value
  }
  return out as T
}

export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export const commit = (): string => {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot }).toString().trim()
  } catch {
    return "unknown"
  }
}

/** Whether tracked files differ from the commit (a run of uncommitted code says so in its JSON). */
export const workingTreeDirty = (): boolean => {
  try {
    return execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: repoRoot }).toString().trim() !== ""
  } catch {
    return false
  }
}

export const machine = () => `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`

/** Writes `bench-results/<name>-<timestamp>.json` (or under `dir`) and returns its path. */
export const writeResult = (name: string, data: unknown, dir = path.join(repoRoot, "bench-results")): string => {
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + "\n")
  return file
}

export const table = (rows: ReadonlyArray<Record<string, string | number>>): string => {
  if (rows.length === 0) return ""
  const keys = Object.keys(rows[0]!)
  const cell = (v: string | number | undefined) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v ?? ""))
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => cell(r[k]).length)))
  const line = (values: ReadonlyArray<string>) => values.map((v, i) => v.padEnd(widths[i]!)).join("  ")
  return [line(keys), line(widths.map((w) => "-".repeat(w))), ...rows.map((r) => line(keys.map((k) => cell(r[k]))))].join("\n")
}

/** Resident set size of a process, from /proc (Linux). */
export const rssKB = (pid: number): number => {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const match = /VmRSS:\s+(\d+) kB/.exec(status)
  return match ? Number(match[1]) : NaN
}

/** Busy and total CPU time of the whole machine so far (Linux /proc/stat, in clock ticks). */
export const cpuTimes = (): { readonly busy: number; readonly total: number } => {
  const fields = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  const total = fields.reduce((a, b) => a + b, 0)
  // idle + iowait
  return { busy: total - fields[3]! - (fields[4] ?? 0), total }
}

/** Share of the machine's CPU time that was busy between two `cpuTimes` readings, in percent. */
export const cpuBusyPercent = (from: ReturnType<typeof cpuTimes>, to: ReturnType<typeof cpuTimes>): number =>
  to.total === from.total ? 0 : Math.round((100 * (to.busy - from.busy)) / (to.total - from.total))

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
