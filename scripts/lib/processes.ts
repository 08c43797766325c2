/**
 * Child processes of a benchmark, none of which may outlive it: each one is
 * tracked and SIGKILLed when its scope closes (success or failure), on SIGINT /
 * SIGTERM / SIGHUP, and on process exit; and each node child is preloaded with
 * exit-with-parent.cjs, which ends it if the benchmark itself is SIGKILLed.
 */
import { Effect } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as path from "node:path"
import { repoRoot } from "./bench.js"

const running = new Set<ChildProcess>()

/** Tracks a child so that killAll (and the exit handlers) reach it. */
export const track = <P extends ChildProcess>(proc: P): P => {
  running.add(proc)
  proc.once("exit", () => running.delete(proc))
  return proc
}

const alive = (proc: ChildProcess) => proc.exitCode === null && proc.signalCode === null

/** SIGKILLs every tracked child that is still running. Synchronous, so it works in an `exit` handler. */
export const killAll = () => {
  for (const proc of running) {
    if (alive(proc)) {
      try {
        proc.kill("SIGKILL")
      } catch {
        // already gone
      }
    }
  }
}

let installed = false
/** Kills every tracked child when this process exits or is told to stop. Call once, early. */
export const killChildrenOnExit = () => {
  if (installed) return
  installed = true
  process.on("exit", killAll)
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
    process.once(signal, () => {
      killAll()
      process.exit(code)
    })
  }
}

/** SIGKILLs one child and waits (at most 5 s) until it is gone. */
export const stop = (proc: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (!alive(proc)) return resolve()
    const timer = setTimeout(resolve, 5000)
    proc.once("exit", () => {
      clearTimeout(timer)
      resolve()
    })
    proc.kill("SIGKILL")
  })

export const exitWithParent = path.join(repoRoot, "scripts/lib/exit-with-parent.cjs")

/** NODE_OPTIONS for a node child: whatever this process has, plus the exit-with-parent preload. */
export const childNodeOptions = () => [process.env.NODE_OPTIONS, `--require ${JSON.stringify(exitWithParent)}`].filter(Boolean).join(" ")

export interface NodeChild {
  readonly name: string
  readonly proc: ChildProcess
  /** Resolves with the first stdout line that parses as a JSON object; rejects if the child exits first or after timeoutMs. */
  readonly firstJson: <T = Record<string, unknown>>(timeoutMs?: number) => Promise<T>
  /** The last few KB of stdout and stderr, for error messages. */
  readonly tail: () => string
}

const spawnNode = (name: string, args: ReadonlyArray<string>, env: Record<string, string>): NodeChild => {
  const proc = track(spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env, NODE_OPTIONS: childNodeOptions() },
    stdio: ["ignore", "pipe", "pipe"]
  }))
  let output = ""
  const lines: Array<string> = []
  const waiters: Array<() => void> = []
  let buffer = ""
  const keep = (text: string) => {
    output = (output + text).slice(-4000)
  }
  proc.stdout!.setEncoding("utf8")
  proc.stdout!.on("data", (chunk: string) => {
    keep(chunk)
    buffer += chunk
    let nl: number
    while ((nl = buffer.indexOf("\n")) !== -1) {
      if (lines.length < 100) lines.push(buffer.slice(0, nl))
      buffer = buffer.slice(nl + 1)
    }
    if (buffer.length > 65536) buffer = ""
    for (const w of waiters.splice(0)) w()
  })
  proc.stderr!.setEncoding("utf8")
  proc.stderr!.on("data", keep)
  proc.once("exit", () => {
    for (const w of waiters.splice(0)) w()
  })
  const tail = () => output.trim()
  const firstJson = <T,>(timeoutMs = 20_000) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: no JSON line on stdout within ${timeoutMs} ms; output: ${tail()}`)), timeoutMs)
      const check = () => {
        for (const line of lines) {
          try {
            const parsed = JSON.parse(line)
            if (parsed && typeof parsed === "object") {
              clearTimeout(timer)
              return resolve(parsed as T)
            }
          } catch {
            // not JSON
          }
        }
        if (!alive(proc)) {
          clearTimeout(timer)
          return reject(new Error(`${name} exited (${proc.exitCode ?? proc.signalCode}) before it was ready; output: ${tail()}`))
        }
        waiters.push(check)
      }
      check()
    })
  return { name, proc, firstJson, tail }
}

/** A node child process in the current scope: SIGKILLed (and awaited) when the scope closes. */
export const nodeChild = (name: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.acquireRelease(Effect.sync(() => spawnNode(name, args, env)), (child) => Effect.promise(() => stop(child.proc)))
