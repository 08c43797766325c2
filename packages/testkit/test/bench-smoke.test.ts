import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseWrk, wrkArgs, wrkOnPath, wrkTimeMs } from "../../../scripts/lib/wrk.js"

/**
 * Small runs of the benchmark scripts (a few tunnels, a second per load run),
 * so the scripts cannot rot: they must finish and write the JSON they promise.
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

const runScript = (script: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.async<{ code: number; output: string }>((resume) => {
    execFile(process.execPath, ["--import", "tsx", path.join(repoRoot, "scripts", script), ...args], { cwd: repoRoot, timeout: 150_000, env: { ...process.env, ...env } }, (error, stdout, stderr) =>
      resume(Effect.succeed({ code: error ? 1 : 0, output: stdout + stderr })))
  })

/** Processes (Linux /proc) whose environment carries `name=value`: what a script started and left running. */
const processesWithEnv = (name: string, value: string): Array<string> => {
  if (!fs.existsSync("/proc")) return []
  const needle = `${name}=${value}\0`
  return fs.readdirSync("/proc").filter((pid) => {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) return false
    try {
      return fs.readFileSync(`/proc/${pid}/environ`, "latin1").includes(needle)
    } catch {
      return false
    }
  }).map((pid) => {
    try {
      return `${pid} ${fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").replace(/\0/g, " ")}`
    } catch {
      return pid
    }
  })
}

const readResult = (dir: string, prefix: string) => {
  const file = fs.readdirSync(dir).find((f) => f.startsWith(prefix) && f.endsWith(".json"))
  expect(file, `no ${prefix}*.json in ${dir}`).toBeDefined()
  return JSON.parse(fs.readFileSync(path.join(dir, file!), "utf8"))
}

describe("benchmark scripts (smoke)", () => {
  it.live("bench:tunnels with 40 tunnels: drains them all with 4001 and leaves no directory entry", () =>
    Effect.gen(function*() {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "bench-tunnels-"))
      const { code, output } = yield* runScript("bench-tunnels.ts", ["--tunnels", "40", "--workers", "1", "--out", out])
      expect(code, output).toBe(0)
      const result = readResult(out, "tunnels-")
      expect(result.tunnels).toBe(40)
      expect(result.opened).toBe(40)
      expect(result.closeCodes).toEqual({ "4001": 40 })
      expect(result.exitCode).toBe(0)
      expect(result.leftoverEntries).toBe(0)
      for (const key of ["commit", "date", "rssBeforeMB", "rssAfterMB", "rssPerTunnelKB", "drainFramesMs", "lastCloseMs", "directoryClearMs", "signalToExitMs"]) {
        expect(result, key).toHaveProperty(key)
      }
      fs.rmSync(out, { recursive: true, force: true })
    }), 120_000)

  it.live("bench:forward for 1 s per run: every system and scenario measured without errors, children gone", () =>
    Effect.gen(function*() {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "bench-forward-"))
      // Every process the script starts inherits this variable: none may have it once the script is done.
      const marker = `${process.pid}-${Date.now()}`
      const { code, output } = yield* runScript("bench-forward.ts", ["--duration", "1", "--warmup", "1", "--roundtrips", "50", "--sse-events", "20", "--transfer-mib", "16", "--out", out], { BENCH_SMOKE_RUN: marker })
      expect(code, output).toBe(0)
      const result = readResult(out, "forward-")
      // --tool auto: wrk where it is installed, autocannon otherwise.
      const tool = wrkOnPath() ? "wrk" : "autocannon"
      expect(result).toMatchObject({ tool, warmupS: 1, durationS: 1, roundtrips: 50 })
      const systems = new Set(result.results.map((r: { system: string }) => r.system))
      expect([...systems].sort()).toEqual(["direct", "effect-relay", "localtunnel", "proxy-chain"])
      // 3 HTTP scenarios x 4 systems, and WebSocket echo direct and through effect-relay.
      expect(result.results).toHaveLength(14)
      for (const row of result.results) {
        expect(row.reqPerSec, JSON.stringify(row)).toBeGreaterThan(0)
        expect(row.errors, JSON.stringify(row)).toBe(0)
        expect(row.tool, JSON.stringify(row)).toBe(row.scenario === "ws echo round trip" ? "ws" : tool)
      }
      expect(result.ratios.map((r: { scenario: string }) => r.scenario)).toEqual(["small GET c=1", "small GET c=32", "1 MiB POST echo c=4", "ws echo round trip c=1"])
      for (const ratio of result.ratios.slice(0, 3)) {
        for (const key of ["relayVsDirect", "relayVsLocaltunnel", "relayVsProxyChain"]) expect(ratio[key], `${ratio.scenario} ${key}`).toBeGreaterThan(0)
        expect(typeof ratio.addedP50Ms).toBe("number")
      }
      // Server-sent events and the large transfers, through every system; the targets judged.
      expect(result.sse.map((r: { system: string }) => r.system)).toEqual(["direct", "effect-relay", "localtunnel", "proxy-chain"])
      for (const row of result.sse.filter((r: { system: string }) => r.system !== "localtunnel")) {
        expect(row, JSON.stringify(row)).toMatchObject({ events: 20, received: 20 })
        expect(row.lagMaxMs, JSON.stringify(row)).toBeGreaterThanOrEqual(0)
      }
      expect(result.transfers).toHaveLength(8)
      for (const row of result.transfers.filter((r: { system: string }) => r.system !== "localtunnel")) {
        expect(row, JSON.stringify(row)).toMatchObject({ bytes: 16 * 2 ** 20, bytesMoved: 16 * 2 ** 20, intact: true })
      }
      const relayDownload = result.transfers.find((r: { system: string; direction: string }) => r.system === "effect-relay" && r.direction === "download")
      expect(relayDownload.hops.map((h: { name: string }) => h.name)).toEqual(["relay", "agent"])
      expect(result.targets.map((t: { scenario: string }) => t.scenario)).toEqual([
        "small GET c=32",
        "small GET c=1",
        "1 MiB POST echo c=4",
        "WebSocket echo round trip",
        "server-sent events",
        "16 MiB download",
        "16 MiB upload"
      ])
      for (const t of result.targets) expect(typeof t.met, JSON.stringify(t)).toBe("boolean")
      expect(processesWithEnv("BENCH_SMOKE_RUN", marker)).toEqual([])
      fs.rmSync(out, { recursive: true, force: true })
    }), 180_000)

  it.live("bench:start with one run of the built bins: all four figures measured, the JSON written, children gone", () =>
    Effect.gen(function*() {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "bench-start-"))
      const marker = `${process.pid}-${Date.now()}`
      // The globalSetup built the bins; the tsx variant is left out to keep this short.
      const { code, output } = yield* runScript("bench-start.ts", ["--runs", "1", "--settle", "200", "--tsx", "0", "--out", out], { BENCH_SMOKE_RUN: marker })
      expect(code, output).toBe(0)
      const result = readResult(out, "start-")
      expect(result).toMatchObject({ runs: 1, settleMs: 200 })
      for (const key of ["commit", "date", "machine", "loadavgBefore", "bundleKB"]) expect(result, key).toHaveProperty(key)
      expect(result.results.map((r: { metric: string; variant: string }) => `${r.variant} ${r.metric}`)).toEqual([
        "built relay: spawn -> /ready 200",
        "built relay: RSS at idle",
        "built host agent: spawn -> tunnel.connected",
        "built host agent: RSS with one tunnel"
      ])
      for (const r of result.results) {
        expect(r.values, JSON.stringify(r)).toHaveLength(1)
        expect(r.median, JSON.stringify(r)).toBeGreaterThan(0)
        expect(typeof r.met).toBe("boolean")
      }
      expect(processesWithEnv("BENCH_SMOKE_RUN", marker)).toEqual([])
      fs.rmSync(out, { recursive: true, force: true })
    }), 120_000)

  it("wrk's --latency report: us/ms/s units, requests/sec, socket errors and non-2xx counted", () => {
    const report = [
      "Running 1s test @ http://127.0.0.1:8080/small",
      "  1 threads and 32 connections",
      "  Thread Stats   Avg      Stdev     Max   +/- Stdev",
      "    Latency     1.72ms    3.01ms  48.05ms   95.12%",
      "    Req/Sec    16.10k     1.20k   17.00k    80.00%",
      "  Latency Distribution",
      "     50%  812.00us",
      "     75%    1.20ms",
      "     90%    2.50ms",
      "     99%    1.05s ",
      "  16100 requests in 1.00s, 1.20MB read",
      "  Socket errors: connect 1, read 2, write 0, timeout 3",
      "  Non-2xx or 3xx responses: 4",
      "Requests/sec:  16015.42",
      "Transfer/sec:      1.20MB"
    ].join("\n")
    expect(parseWrk(report)).toEqual({ reqPerSec: 16015, p50Ms: 0.812, p99Ms: 1050, errors: 10 })
    const clean = report.replace(/^.*(Socket errors|Non-2xx).*\n/gm, "")
    expect(parseWrk(clean).errors).toBe(0)
    expect(wrkTimeMs("38.12us")).toBeCloseTo(0.03812, 6)
    expect(wrkTimeMs("1.00m")).toBe(60_000)
    expect(() => parseWrk("Requests/sec: 1")).toThrow(/50%/)
    expect(wrkArgs({ url: "http://x/", headers: { host: "a.localhost:1", authorization: "Bearer t" }, connections: 1, durationS: 2 }))
      .toEqual(["-t", "1", "-c", "1", "-d", "2s", "--timeout", "10s", "--latency", "-H", "Host: a.localhost:1", "-H", "Authorization: Bearer t", "http://x/"])
  })
})
