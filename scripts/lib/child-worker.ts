/**
 * A TypeScript module run as a child process with an IPC channel (Node's
 * `fork` with tsx loaded), from the parent's side: send it commands, wait for
 * its events, stop it. Its stdout and stderr go to a log file. Every child is
 * also remembered process-wide and SIGKILLed when this process exits, however
 * it exits, so a crash of the parent never leaves workers behind.
 */
import { type ChildProcess, fork } from "node:child_process"
import * as fs from "node:fs"

const running = new Set<ChildProcess>()
let exitHookInstalled = false

/** Remembers `child` so it is SIGKILLed (by its PID) if it still runs when this process exits. */
export const killOnExit = (child: ChildProcess): void => {
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on("exit", () => {
      for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
    })
  }
  running.add(child)
  child.once("exit", () => running.delete(child))
}

export interface ChildWorker<Command, Event extends { readonly type: string }> {
  readonly pid: number
  readonly name: string
  readonly send: (command: Command) => void
  /** The first event of `type` (matching `test`) received from now on, or earlier if `includePast`. */
  readonly waitFor: <T extends Event["type"]>(
    type: T,
    timeoutMs: number,
    options?: { readonly test?: (event: Extract<Event, { type: T }>) => boolean; readonly includePast?: boolean }
  ) => Promise<Extract<Event, { type: T }>>
  /** Called on every event. */
  readonly onEvent: (listener: (event: Event) => void) => void
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** SIGKILL now if still running, and wait for the exit. */
  readonly kill: () => Promise<void>
}

export const startChildWorker = <Command, Event extends { readonly type: string }>(
  name: string,
  modulePath: string,
  logFile: string
): ChildWorker<Command, Event> => {
  const log = fs.openSync(logFile, "a")
  const child = fork(modulePath, [], {
    // GAMEDAY_WORKER_NODE_ARGS adds Node flags, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile the workers.
    execArgv: ["--import", "tsx", ...(process.env.GAMEDAY_WORKER_NODE_ARGS?.split(" ").filter((a) => a !== "") ?? [])],
    stdio: ["ignore", log, log, "ipc"],
    env: { ...process.env }
  })
  fs.closeSync(log)
  killOnExit(child)
  const past: Array<Event> = []
  const listeners: Array<(event: Event) => void> = []
  child.on("message", (message) => {
    const event = message as Event
    past.push(event)
    if (past.length > 1000) past.shift()
    for (const l of [...listeners]) l(event)
  })
  // A child that dies closes the channel; sends after that must not throw in the parent.
  child.on("error", () => {})
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  )
  const isRunning = () => child.exitCode === null && child.signalCode === null

  const waitFor: ChildWorker<Command, Event>["waitFor"] = (type, timeoutMs, options = {}) =>
    new Promise((resolve, reject) => {
      type Wanted = Extract<Event, { type: typeof type }>
      const matches = (e: Event): e is Wanted => e.type === type && (options.test === undefined || options.test(e as Wanted))
      if (options.includePast) {
        const found = past.find(matches)
        if (found) return resolve(found)
      }
      const done = () => {
        clearTimeout(timer)
        const i = listeners.indexOf(listener)
        if (i !== -1) listeners.splice(i, 1)
      }
      const listener = (e: Event) => {
        if (e.type === "error") {
          done()
          reject(new Error(`${name}: ${(e as unknown as { message: string }).message} (log: ${logFile})`))
        } else if (matches(e)) {
          done()
          resolve(e)
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`${name}: no "${type}" within ${timeoutMs} ms (log: ${logFile})`))
      }, timeoutMs)
      listeners.push(listener)
      void exited.then(({ code, signal }) => {
        if (listeners.includes(listener)) {
          done()
          reject(new Error(`${name} exited (code ${code}, signal ${signal}) before "${type}" (log: ${logFile})`))
        }
      })
    })

  return {
    pid: child.pid!,
    name,
    send: (command) => {
      if (isRunning() && child.connected) child.send(command as object)
    },
    waitFor,
    onEvent: (listener) => void listeners.push(listener),
    exited,
    kill: async () => {
      if (isRunning()) child.kill("SIGKILL")
      await exited
    }
  }
}
