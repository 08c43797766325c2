import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/**
 * A small run of `npm run gameday` (a few hosts with two tunnels, a few seconds
 * per round), so the script cannot rot: it must finish, leave no directory
 * entry behind a drained relay, and write the JSON it promises.
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

const runGameday = (args: ReadonlyArray<string>) =>
  Effect.async<{ code: number; output: string }>((resume) => {
    const child = execFile(
      process.execPath,
      ["--import", "tsx", path.join(repoRoot, "scripts", "gameday.ts"), ...args],
      { cwd: repoRoot, timeout: 100_000, killSignal: "SIGINT", maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resume(Effect.succeed({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, output: stdout + stderr }))
    )
    return Effect.sync(() => child.kill("SIGINT"))
  })

describe("gameday (smoke)", () => {
  it.live("4 hosts with two tunnels, a drain round and a single-relay round: JSON shape, relays drained cleanly, no stale directory entry, no host without a tunnel", () =>
    Effect.gen(function*() {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "gameday-smoke-"))
      const { code, output } = yield* runGameday([
        "--hosts", "4", "--rate", "20", "--duration", "2", "--workers", "1",
        "--rounds", "drain,single-relay", "--out", out
      ])
      expect(code, output).toBe(0)
      const file = fs.readdirSync(out).find((f) => f.startsWith("gameday-") && f.endsWith(".json"))
      expect(file, output).toBeDefined()
      const result = JSON.parse(fs.readFileSync(path.join(out, file!), "utf8"))

      expect(typeof result.commit).toBe("string")
      expect(Number.isNaN(Date.parse(result.date))).toBe(false)
      expect(result.hosts).toBe(4)
      expect(result.rate).toBe(20)
      expect(result.tunnels).toBe(2)
      expect(result.rounds.map((r: { name: string }) => r.name)).toEqual(["drain", "single-relay"])
      expect(result.rounds.map((r: { tunnels: number }) => r.tunnels)).toEqual([2, 1])
      for (const round of result.rounds) {
        const where = JSON.stringify(round)
        for (const key of ["requests", "failedRequests", "refusedRetried", "resetRetried", "inFlightAtKill", "staleEntries", "peakRegistrationsPerSec"]) {
          expect(Number.isInteger(round[key]), `${key}: ${where}`).toBe(true)
          expect(round[key], `${key}: ${where}`).toBeGreaterThanOrEqual(0)
        }
        for (const summary of [round.outageMs, round.hostsWithoutTunnelMs]) {
          expect(Object.keys(summary).sort()).toEqual(["max", "p50", "p99"])
          for (const v of Object.values(summary)) expect(typeof v).toBe("number")
        }
        expect(Object.keys(round.heldRequests).sort()).toEqual(["drained", "refused", "releasedByEvent", "timedOut", "total"])
        expect(round.heldRequestsUnreadScrapes, where).toBe(0)
        expect(round.rssPerHostKB, where).toBeGreaterThanOrEqual(0)
        // Every signalled relay's hosts came back to all their tunnels, with a time.
        for (const v of Object.values(round.backToAllTunnelsMs)) expect(typeof v, where).toBe("number")
        // Load went through the relays while they restarted, and the hosts came back to them.
        expect(round.requests, where).toBeGreaterThan(20)
        expect(round.failedRequests, where).toBeLessThan(round.requests)
        expect(round.peakRegistrationsPerSec, where).toBeGreaterThan(0)
        expect(round.everyHostBack, where).toBe(true)
      }
      const [drain, single] = result.rounds
      // A drained relay exits 0 and takes its directory entries with it.
      expect(drain.drainMs, JSON.stringify(drain)).toHaveLength(2)
      expect(drain.relayExitCodes, JSON.stringify(drain)).toEqual([0, 0])
      expect(drain.entriesLeftAtExit, JSON.stringify(drain)).toEqual({ a: 0, b: 0 })
      expect(drain.staleEntries, JSON.stringify(drain)).toBe(0)
      // With a tunnel on each relay, a rolling drain leaves no host without one.
      expect(drain.hostsWithoutTunnelMs.max, JSON.stringify(drain)).toBe(0)
      expect(Object.keys(drain.backToAllTunnelsMs)).toEqual(["a", "b"])
      // One relay alone: restarted in place, with its directory in memory.
      expect(single.relays).toEqual(["s"])
      expect(single.directory).toBe("memory")
      expect(single.relayExitCodes, JSON.stringify(single)).toEqual([0])
      fs.rmSync(out, { recursive: true, force: true })
    }), 110_000)
})
