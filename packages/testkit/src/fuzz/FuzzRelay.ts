/**
 * The relay a fuzz run abuses: `effect-relay serve` as a child process (testkit's `spawnLogging`)
 * on a free port of 127.0.0.1. At LOG_LEVEL=warn the relay does not log `relay.listening`, which
 * `startRelayProcess` waits for, so it is ready here once `/health` answers 200.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import { freePort } from "../PrivateRedis.js"
import { relayBin, type RelayProcess, spawnLogging } from "../RelayProcess.js"

const healthy = async (url: string): Promise<boolean> => {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) })
    await res.arrayBuffer()
    return res.status === 200
  } catch {
    return false
  }
}

/** Starts the relay and waits until `/health` answers; SIGKILLed when the scope closes if it still runs. */
export const startQuietRelay = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const port = yield* freePort
      const proc = spawnLogging(relayBin, ["serve", "--port", String(port), "--bind", "127.0.0.1"], env)
      const http = `http://127.0.0.1:${port}`
      const up = yield* Effect.promise(async () => {
        const deadline = Date.now() + 20_000
        while (Date.now() < deadline && proc.child.exitCode === null && proc.child.signalCode === null) {
          if (await healthy(`${http}/health`)) return true
          await new Promise((r) => setTimeout(r, 100))
        }
        return false
      })
      if (!up) {
        proc.child.kill("SIGKILL")
        const { stdout, stderr } = proc.output()
        return yield* Effect.dieMessage(`the relay did not answer /health within 20 s: ${(stdout + stderr).slice(-2000)}`)
      }
      return { ...proc, port, http, ws: `ws://127.0.0.1:${port}` } satisfies RelayProcess
    }),
    (proc) =>
      Effect.promise(async () => {
        if (proc.child.exitCode === null && proc.child.signalCode === null) {
          proc.child.kill("SIGKILL")
          await proc.exited
        }
      })
  )

/** Resident set size of a process in MB, from /proc (Linux); NaN when it is gone. */
export const rssMB = (pid: number): number => {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return match ? Number(match[1]) / 1024 : NaN
  } catch {
    return NaN
  }
}
