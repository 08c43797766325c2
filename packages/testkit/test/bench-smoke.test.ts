import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/**
 * Small runs of the benchmark scripts (a few tunnels, a second per load run),
 * so the scripts cannot rot: they must finish and write the JSON they promise.
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

const runScript = (script: string, args: ReadonlyArray<string>) =>
  Effect.async<{ code: number; output: string }>((resume) => {
    execFile(process.execPath, ["--import", "tsx", path.join(repoRoot, "scripts", script), ...args], { cwd: repoRoot, timeout: 120_000 }, (error, stdout, stderr) =>
      resume(Effect.succeed({ code: error ? 1 : 0, output: stdout + stderr })))
  })

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

  it.live("bench:forward for 1 s per run: every system and scenario measured without errors", () =>
    Effect.gen(function*() {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "bench-forward-"))
      const { code, output } = yield* runScript("bench-forward.ts", ["--duration", "1", "--roundtrips", "50", "--out", out])
      expect(code, output).toBe(0)
      const result = readResult(out, "forward-")
      const systems = new Set(result.results.map((r: { system: string }) => r.system))
      expect([...systems].sort()).toEqual(["direct", "effect-relay", "localtunnel"])
      expect(result.results).toHaveLength(11)
      for (const row of result.results) {
        expect(row.reqPerSec, JSON.stringify(row)).toBeGreaterThan(0)
        expect(row.errors, JSON.stringify(row)).toBe(0)
      }
      fs.rmSync(out, { recursive: true, force: true })
    }), 120_000)
})
