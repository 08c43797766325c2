import { Effect } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

/** The relay CLI's bin, run the way `node_modules/.bin/effect-relay` runs it. */
export const relayBin = path.join(repoRoot, "packages/relay/bin/effect-relay.js")
export const hostBin = path.join(repoRoot, "packages/host/bin/effect-relay-host.js")

export interface LogLine {
  readonly message: string | ReadonlyArray<string>
  readonly logLevel: string
  readonly timestamp: string
  readonly annotations: Record<string, unknown>
  /** Milliseconds since the process was spawned, as seen by the test. */
  readonly at: number
}

/** A child process printing JSON log lines, with helpers to wait on them. */
export interface LoggingProcess {
  readonly child: ChildProcess
  readonly pid: number
  readonly logs: Array<LogLine>
  /** Lines on stdout/stderr that were not JSON log lines. */
  readonly other: Array<string>
  /** Everything the process wrote so far, byte for byte (decoded as UTF-8), per stream. */
  readonly output: () => { readonly stdout: string; readonly stderr: string }
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null; readonly at: number }>
  /** Resolves once the process exited and its stdout and stderr are closed (`output` is then complete). */
  readonly closed: Promise<void>
  readonly waitForLog: (message: string, timeoutMs?: number) => Promise<LogLine>
  readonly signal: (signal: NodeJS.Signals) => void
  readonly spawnedAt: number
}

/** A log line's event name: the message, or its first part when the line logged several values. */
const messageOf = (line: LogLine) => (Array.isArray(line.message) ? String(line.message[0]) : String(line.message))

export const spawnLogging = (command: string, args: ReadonlyArray<string>, env: Record<string, string>): LoggingProcess => {
  const spawnedAt = Date.now()
  const child = spawn(process.execPath, [command, ...args], {
    env: { ...process.env, LOG_FORMAT: "json", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const logs: Array<LogLine> = []
  const other: Array<string> = []
  const raw = { stdout: "", stderr: "" }
  const waiters: Array<() => void> = []
  const onLine = (text: string) => {
    if (text.trim() === "") return
    try {
      const parsed = JSON.parse(text)
      if (parsed && typeof parsed === "object" && "message" in parsed) {
        logs.push({ ...parsed, at: Date.now() - spawnedAt })
        for (const w of waiters.splice(0)) w()
        return
      }
    } catch {
      // not a log line
    }
    other.push(text)
  }
  for (const [name, stream] of [["stdout", child.stdout!], ["stderr", child.stderr!]] as const) {
    let buffer = ""
    stream.setEncoding("utf8")
    stream.on("data", (chunk: string) => {
      raw[name] += chunk
      buffer += chunk
      let nl: number
      while ((nl = buffer.indexOf("\n")) !== -1) {
        onLine(buffer.slice(0, nl))
        buffer = buffer.slice(nl + 1)
      }
    })
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on("exit", (code, signal) => {
      for (const w of waiters.splice(0)) w()
      resolve({ code, signal, at: Date.now() - spawnedAt })
    })
  )
  const waitForLog = (message: string, timeoutMs = 15_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const deadline = setTimeout(
        () => reject(new Error(`no "${message}" log within ${timeoutMs} ms; got: ${logs.map(messageOf).join(", ")}; other: ${other.join(" | ")}`)),
        timeoutMs
      )
      const check = () => {
        const found = logs.find((l) => messageOf(l) === message)
        if (found) {
          clearTimeout(deadline)
          resolve(found)
        } else if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(deadline)
          reject(new Error(`process exited before "${message}"; logs: ${logs.map(messageOf).join(", ")}; other: ${other.join(" | ")}`))
        } else waiters.push(check)
      }
      check()
    })
  return {
    child,
    pid: child.pid!,
    logs,
    other,
    output: () => ({ ...raw }),
    exited,
    closed: new Promise<void>((resolve) => child.on("close", () => resolve())),
    waitForLog,
    signal: (s) => void child.kill(s),
    spawnedAt
  }
}

export interface RelayProcess extends LoggingProcess {
  readonly port: number
  readonly http: string
  readonly ws: string
}

/**
 * Starts `effect-relay serve` as a child process on a free port (or `port`) and waits until it
 * listens. Killed (SIGKILL) when the scope closes if it is still running.
 */
export const startRelayProcess = (options: { readonly env?: Record<string, string>; readonly port?: number; readonly args?: ReadonlyArray<string> } = {}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const proc = spawnLogging(relayBin, ["serve", "--port", String(options.port ?? 0), "--bind", "127.0.0.1", ...(options.args ?? [])], options.env ?? {})
      const listening = await proc.waitForLog("relay.listening", 20_000).catch((e) => {
        // Never leave a relay behind that did not come up.
        proc.child.kill("SIGKILL")
        throw e
      })
      const port = Number(listening.annotations.port)
      return { ...proc, port, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}` } satisfies RelayProcess
    }),
    (proc) =>
      Effect.promise(async () => {
        if (proc.child.exitCode === null && proc.child.signalCode === null) {
          proc.child.kill("SIGKILL")
          await proc.exited
        }
      })
  )

export { messageOf }
