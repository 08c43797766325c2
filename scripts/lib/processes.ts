/**
 * Every child process of a script is started here, one way (`spawnChild`),
 * and none may outlive the script:
 * - its stdout and stderr are read line by line (`onLine`, `waitForLine`, and
 *   a tail for error messages), or appended to a log file;
 * - it is remembered process-wide and SIGKILLed if it still runs when this
 *   process exits, however it exits;
 * - a node child is preloaded with exit-with-parent.cjs, which ends it once
 *   this process is gone, even after a SIGKILL, when no handler runs.
 * A script that NodeRuntime.runMain does not run calls `exitOnSignals` once,
 * so that SIGINT / SIGTERM / SIGHUP kill the children too.
 */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { repoRoot, sleep } from "./bench.js"

// --- The registry: children SIGKILLed when this process exits

const running = new Set<ChildProcess>()

const alive = (proc: ChildProcess) => proc.exitCode === null && proc.signalCode === null

/** SIGKILLs every child that still runs. Synchronous, so it works in an `exit` handler. */
const killAll = () => {
  for (const proc of running) {
    if (!alive(proc)) continue
    try {
      proc.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
}

let exitHookInstalled = false
const killOnExit = (proc: ChildProcess) => {
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on("exit", killAll)
  }
  running.add(proc)
  proc.once("exit", () => running.delete(proc))
}

let signalsHandled = false
/** SIGINT, SIGTERM and SIGHUP kill every child and exit (130, 143, 129). Call once, early. */
export const exitOnSignals = () => {
  if (signalsHandled) return
  signalsHandled = true
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
    process.once(signal, () => {
      killAll()
      process.exit(code)
    })
  }
}

// --- What a child emits (its output lines, its IPC messages), and waiting for one item

/** Items kept for a late `waitFor` with `past` (the oldest are dropped past this). */
const pastKept = 1000

interface Feed<T> {
  readonly push: (item: T) => void
  /** The child is gone: every waiter rejects with `reason`. */
  readonly end: (reason: string) => void
  readonly listen: (listener: (item: T) => void) => void
  /**
   * The first item `accept` returns a value for (it throws to reject the wait): among those
   * kept so far when `past`, then among new ones; rejects after `timeoutMs` or when the feed ends.
   */
  readonly waitFor: <R>(what: string, accept: (item: T) => R | undefined, timeoutMs: number, past: boolean) => Promise<R>
}

const feed = <T>(name: string, where: () => string): Feed<T> => {
  const kept: Array<T> = []
  const listeners = new Set<(item: T) => void>()
  const enders = new Set<(reason: string) => void>()
  let ended: string | undefined
  const push = (item: T) => {
    kept.push(item)
    if (kept.length > pastKept) kept.shift()
    for (const listener of [...listeners]) listener(item)
  }
  const end = (reason: string) => {
    ended ??= reason
    for (const ender of [...enders]) ender(reason)
  }
  const waitFor = <R>(what: string, accept: (item: T) => R | undefined, timeoutMs: number, past: boolean) =>
    new Promise<R>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer)
        listeners.delete(listener)
        enders.delete(ender)
      }
      const listener = (item: T) => {
        try {
          const found = accept(item)
          if (found === undefined) return
          done()
          resolve(found)
        } catch (e) {
          done()
          reject(new Error(`${name}: ${e instanceof Error ? e.message : String(e)} (${where()})`))
        }
      }
      const ender = (reason: string) => {
        done()
        reject(new Error(`${name} ${reason} before ${what} (${where()})`))
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`${name}: no ${what} within ${timeoutMs} ms (${where()})`))
      }, timeoutMs)
      listeners.add(listener)
      enders.add(ender)
      if (past) for (const item of [...kept]) if (listeners.has(listener)) listener(item)
      if (ended !== undefined && listeners.has(listener)) ender(ended)
    })
  return { push, end, listen: (listener) => void listeners.add(listener), waitFor }
}

// --- Spawning

const exitWithParent = path.join(repoRoot, "scripts/lib/exit-with-parent.cjs")

/** NODE_OPTIONS for a node child: whatever this process has, plus the exit-with-parent preload. */
const nodeOptions = () => [process.env.NODE_OPTIONS, `--require ${JSON.stringify(exitWithParent)}`].filter(Boolean).join(" ")

/** Node's arguments to run a TypeScript file: tsx's loader, the file, its arguments. */
export const tsx = (file: string, ...args: ReadonlyArray<string>): Array<string> => ["--import", "tsx", file, ...args]

export interface ChildOptions {
  /** Names the child in error messages. */
  readonly name: string
  /** The program; node (this one, with exit-with-parent preloaded) when absent. */
  readonly command?: string
  readonly args: ReadonlyArray<string>
  /** Added to this process's environment. */
  readonly env?: Record<string, string>
  /** Appends stdout and stderr to this file instead of reading them (no lines then). */
  readonly logFile?: string
  /** A pipe to the child's stdin (`write`). */
  readonly stdin?: boolean
  /** An IPC channel to a node child (`send`, `onMessage`). */
  readonly ipc?: boolean
}

export interface ChildExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface Child {
  readonly name: string
  readonly pid: number
  readonly spawnedAt: number
  readonly isRunning: () => boolean
  readonly exited: Promise<ChildExit>
  /** Resolves once it exited and its output is read to the end. */
  readonly closed: Promise<ChildExit>
  /** Calls `listener` with every line the child writes from now on, on either stream. */
  readonly onLine: (listener: (line: string, stream: "stdout" | "stderr") => void) => void
  /**
   * The first output line (either stream, from its start: the last 1000 lines are kept) that
   * `accept` returns a value for; rejects if the child is done first or after `timeoutMs`.
   */
  readonly waitForLine: <R>(what: string, accept: (line: string) => R | undefined, timeoutMs: number) => Promise<R>
  /** The first output line that is a JSON object (and passes `test`): a child's "ready" line, a report. */
  readonly firstJson: <T = Record<string, unknown>>(timeoutMs?: number, test?: (value: Record<string, unknown>) => boolean) => Promise<T>
  /** The last few KB of its output (or where its log file is), for error messages. */
  readonly tail: () => string
  readonly write: (text: string) => void
  readonly send: (message: object) => void
  readonly onMessage: (listener: (message: unknown) => void) => void
  /** The first IPC message `accept` returns a value for, from now on (it throws to reject the wait). */
  readonly waitForMessage: <R>(what: string, accept: (message: unknown) => R | undefined, timeoutMs: number) => Promise<R>
  readonly signal: (signal: NodeJS.Signals) => void
  /** SIGKILL if it still runs, and wait (at most 5 s) until it is gone. */
  readonly kill: () => Promise<void>
}

/** Starts a child process (see the top of this file). */
export const spawnChild = (options: ChildOptions): Child => {
  const spawnedAt = Date.now()
  const proc = start(options)
  killOnExit(proc)
  let recent = ""
  const tail = () => (options.logFile === undefined ? `output: ${recent.trim()}` : `log: ${options.logFile}`)
  const lines = feed<OutputLine>(options.name, tail)
  const messages = feed<unknown>(options.name, tail)
  readLines(proc, (chunk) => (recent = (recent + chunk).slice(-4000)), lines.push)
  proc.on("message", messages.push)
  const { exited, closed } = ends(proc, lines, messages, (reason) => (recent += `\n${reason}`))
  const isRunning = () => proc.pid !== undefined && alive(proc)

  return {
    name: options.name,
    pid: proc.pid ?? -1,
    spawnedAt,
    isRunning,
    exited,
    closed,
    onLine: (listener) => lines.listen((l) => listener(l.text, l.stream)),
    waitForLine: (what, accept, timeoutMs) => lines.waitFor(what, (l) => accept(l.text), timeoutMs, true),
    firstJson: <T,>(timeoutMs = 20_000, test?: (value: Record<string, unknown>) => boolean) =>
      lines.waitFor("JSON line", (l) => {
        const value = jsonObject(l.text)
        return value !== undefined && (test === undefined || test(value)) ? (value as T) : undefined
      }, timeoutMs, true),
    tail,
    write: (text) => void proc.stdin?.write(text),
    send: (message) => {
      if (isRunning() && proc.connected) proc.send(message)
    },
    onMessage: messages.listen,
    waitForMessage: (what, accept, timeoutMs) => messages.waitFor(what, accept, timeoutMs, false),
    signal: (signal) => void proc.kill(signal),
    kill: async () => {
      if (isRunning()) proc.kill("SIGKILL")
      await Promise.race([exited, sleep(5000)])
    }
  }
}

const start = (options: ChildOptions): ChildProcess => {
  const node = options.command === undefined
  const log = options.logFile === undefined ? undefined : fs.openSync(options.logFile, "a")
  const output = log ?? "pipe"
  try {
    return spawn(options.command ?? process.execPath, options.args, {
      cwd: repoRoot,
      env: { ...process.env, ...options.env, ...(node ? { NODE_OPTIONS: nodeOptions() } : {}) },
      stdio: [options.stdin ? "pipe" : "ignore", output, output, ...(options.ipc ? ["ipc" as const] : [])]
    })
  } finally {
    if (log !== undefined) fs.closeSync(log)
  }
}

interface OutputLine {
  readonly text: string
  readonly stream: "stdout" | "stderr"
}

/** Splits what the child writes (when piped) into lines; `onChunk` sees it unsplit. */
const readLines = (proc: ChildProcess, onChunk: (chunk: string) => void, onLine: (line: OutputLine) => void) => {
  for (const [stream, readable] of [["stdout", proc.stdout], ["stderr", proc.stderr]] as const) {
    if (readable === null) continue
    let buffer = ""
    readable.setEncoding("utf8")
    readable.on("data", (chunk: string) => {
      onChunk(chunk)
      buffer += chunk
      let nl: number
      while ((nl = buffer.indexOf("\n")) !== -1) {
        onLine({ text: buffer.slice(0, nl), stream })
        buffer = buffer.slice(nl + 1)
      }
      // A "line" this long is not one anybody waits for.
      if (buffer.length > 65536) buffer = ""
    })
    // The last line, if it had no newline.
    readable.on("end", () => buffer !== "" && onLine({ text: buffer, stream }))
  }
}

/**
 * When the child is gone: `exited` (the process), `closed` (its output read to the end too).
 * Waits for a message end at the exit, waits for a line once the output is closed.
 */
const ends = (proc: ChildProcess, lines: Feed<OutputLine>, messages: Feed<unknown>, onStartFailure: (reason: string) => void) => {
  let resolveExited: (exit: ChildExit) => void = () => {}
  let resolveClosed: (exit: ChildExit) => void = () => {}
  const exited = new Promise<ChildExit>((resolve) => (resolveExited = resolve))
  const closed = new Promise<ChildExit>((resolve) => (resolveClosed = resolve))
  proc.once("exit", (code, signal) => {
    resolveExited({ code, signal })
    messages.end(`exited (code ${code}, signal ${signal})`)
  })
  proc.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
    resolveClosed({ code, signal })
    lines.end(`exited (code ${code}, signal ${signal})`)
  })
  // A child that could not start, or a send on a closed channel: never an exception in this process.
  proc.on("error", (e) => {
    if (proc.pid !== undefined) return
    onStartFailure(e.message)
    resolveExited({ code: null, signal: null })
    resolveClosed({ code: null, signal: null })
    lines.end(`did not start (${e.message})`)
    messages.end(`did not start (${e.message})`)
  })
  return { exited, closed }
}

const jsonObject = (line: string): Record<string, unknown> | undefined => {
  try {
    const parsed: unknown = JSON.parse(line)
    return parsed !== null && typeof parsed === "object" ? (parsed as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** A child in the current scope: SIGKILLed (and awaited) when the scope closes. */
export const scopedChild = (options: ChildOptions) =>
  Effect.acquireRelease(Effect.sync(() => spawnChild(options)), (child) => Effect.promise(child.kill))

// --- Ready signals

/**
 * Polls `url` every `intervalMs` until it answers 200; rejects after `timeoutMs`, or as soon as
 * `child` (the process that should answer) is gone.
 */
export const waitForHttp200 = async (
  url: string,
  options: { readonly timeoutMs: number; readonly intervalMs: number; readonly headers?: Record<string, string>; readonly child?: Child }
): Promise<void> => {
  const deadline = Date.now() + options.timeoutMs
  while (Date.now() < deadline) {
    if (options.child !== undefined && !options.child.isRunning()) throw new Error(`${url}: ${options.child.name} exited before it answered`)
    try {
      const res = await fetch(url, { headers: options.headers ?? {} })
      await res.arrayBuffer()
      if (res.status === 200) return
    } catch {
      // not listening yet
    }
    await sleep(options.intervalMs)
  }
  throw new Error(`${url} did not answer 200 within ${options.timeoutMs} ms`)
}
