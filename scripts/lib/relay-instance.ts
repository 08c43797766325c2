/**
 * One relay of the game day: the real CLI (`effect-relay serve`) as a child
 * process on a fixed port, which can be stopped (SIGINT: the drain; SIGKILL:
 * a crash) and started again on the same port, the way a platform restarts a
 * machine in place. It keeps the JSON log lines of every run of the process.
 */
import { type LoggingProcess, messageOf, relayBin, spawnLogging } from "@effect-relay/testkit"
import { killOnExit } from "./child-worker.js"
import { sleep } from "./bench.js"

export interface RelayStop {
  readonly signal: NodeJS.Signals
  readonly signalAt: number
  readonly exitAt: number
  /** Signal to exit, as seen by the parent. */
  readonly ms: number
  readonly code: number | null
  /** The relay's own `drain.done {ms}`, when it logged one. */
  readonly drainDoneMs: number | undefined
}

export interface RelayStart {
  readonly spawnedAt: number
  readonly listeningAt: number
  readonly readyAt: number
}

export interface RelayInstance {
  readonly name: string
  readonly port: number
  readonly http: string
  readonly ws: string
  /** `{region}:{machineId}`: the owner id of its directory entries. */
  readonly owner: string
  /** When the running process was spawned (entries written before that are a dead process's). */
  readonly currentSpawnedAt: () => number
  readonly isRunning: () => boolean
  /** PID of the running process, if one runs. */
  readonly pid: () => number | undefined
  readonly start: () => Promise<RelayStart>
  readonly stop: (signal: "SIGINT" | "SIGKILL") => Promise<RelayStop>
  /** Times (the relay's own log timestamps, ms) of every `tunnel.registered`, across restarts. */
  readonly registrations: () => ReadonlyArray<number>
  /** Log lines of every run, oldest run first. */
  readonly logs: () => ReadonlyArray<LoggingProcess["logs"][number]>
  /** Lines that were not JSON logs (start-up failures show here). */
  readonly otherOutput: () => ReadonlyArray<string>
}

export interface RelayInstanceOptions {
  readonly name: string
  readonly port: number
  readonly region: string
  readonly env: Record<string, string>
  readonly startTimeoutMs?: number
}

/** Polls `GET /ready` until it answers 200. */
const waitReady = async (url: string, timeoutMs: number, alive: () => boolean) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`${url}: the relay exited before it was ready`)
    try {
      const res = await fetch(`${url}/ready`)
      await res.arrayBuffer()
      if (res.status === 200) return
    } catch {
      // not listening yet
    }
    await sleep(25)
  }
  throw new Error(`${url}/ready did not answer 200 within ${timeoutMs} ms`)
}

export const relayInstance = (options: RelayInstanceOptions): RelayInstance => {
  const runs: Array<LoggingProcess> = []
  const http = `http://127.0.0.1:${options.port}`
  const current = () => runs[runs.length - 1]
  const isRunning = () => {
    const proc = current()
    return proc !== undefined && proc.child.exitCode === null && proc.child.signalCode === null
  }

  const start = async (): Promise<RelayStart> => {
    if (isRunning()) throw new Error(`relay ${options.name} is already running`)
    const proc = spawnLogging(relayBin, ["serve", "--port", String(options.port), "--bind", "127.0.0.1"], {
      ...options.env,
      REGION: options.region,
      MACHINE_ID: options.name,
      RELAY_INTERNAL_URL: http
    })
    killOnExit(proc.child)
    runs.push(proc)
    const spawnedAt = proc.spawnedAt
    try {
      await proc.waitForLog("relay.listening", options.startTimeoutMs ?? 30_000)
      const listeningAt = Date.now()
      await waitReady(http, options.startTimeoutMs ?? 30_000, isRunning)
      return { spawnedAt, listeningAt, readyAt: Date.now() }
    } catch (e) {
      // Never leave a relay behind that did not come up.
      proc.child.kill("SIGKILL")
      throw e
    }
  }

  const stop = async (signal: "SIGINT" | "SIGKILL"): Promise<RelayStop> => {
    const proc = current()
    if (proc === undefined || !isRunning()) throw new Error(`relay ${options.name} is not running`)
    const signalAt = Date.now()
    proc.signal(signal)
    const exit = await proc.exited
    const exitAt = Date.now()
    const done = proc.logs.find((l) => messageOf(l) === "drain.done")
    return {
      signal,
      signalAt,
      exitAt,
      ms: exitAt - signalAt,
      code: exit.code,
      drainDoneMs: done === undefined ? undefined : Number(done.annotations.ms)
    }
  }

  return {
    name: options.name,
    port: options.port,
    http,
    ws: `ws://127.0.0.1:${options.port}`,
    owner: `${options.region}:${options.name}`,
    currentSpawnedAt: () => current()?.spawnedAt ?? 0,
    isRunning,
    pid: () => (isRunning() ? current()?.pid : undefined),
    start,
    stop,
    registrations: () =>
      runs.flatMap((r) => r.logs.filter((l) => messageOf(l) === "tunnel.registered").map((l) => Date.parse(l.timestamp))),
    logs: () => runs.flatMap((r) => r.logs),
    otherOutput: () => runs.flatMap((r) => r.other)
  }
}
