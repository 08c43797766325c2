/**
 * One relay of the game day: the real CLI (`effect-relay serve`) as a child
 * process on a fixed port, which can be stopped (SIGINT: the drain; SIGKILL:
 * a crash) and started again on the same port, the way a platform restarts a
 * machine in place. It keeps the JSON log lines of every run of the process.
 */
import { type LogLine, messageOf } from "@effect-relay/testkit"
import { waitForHttp200 } from "../lib/processes.js"
import { type RelayProcess, spawnRelay } from "../lib/relay-process.js"

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
  readonly logs: () => ReadonlyArray<LogLine>
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

export const relayInstance = (options: RelayInstanceOptions): RelayInstance => {
  const runs: Array<RelayProcess> = []
  const http = `http://127.0.0.1:${options.port}`
  const current = () => runs[runs.length - 1]
  const isRunning = () => current()?.child.isRunning() ?? false

  const start = async (): Promise<RelayStart> => {
    if (isRunning()) throw new Error(`relay ${options.name} is already running`)
    const relay = spawnRelay(`relay ${options.name}`, options.port, {
      ...options.env,
      REGION: options.region,
      MACHINE_ID: options.name,
      RELAY_INTERNAL_URL: http
    })
    runs.push(relay)
    const timeoutMs = options.startTimeoutMs ?? 30_000
    try {
      await relay.waitForLog("relay.listening", timeoutMs)
      const listeningAt = Date.now()
      await waitForHttp200(`${http}/ready`, { timeoutMs, intervalMs: 25, child: relay.child })
      return { spawnedAt: relay.child.spawnedAt, listeningAt, readyAt: Date.now() }
    } catch (e) {
      // Never leave a relay behind that did not come up.
      await relay.child.kill()
      throw e
    }
  }

  const stop = async (signal: "SIGINT" | "SIGKILL"): Promise<RelayStop> => {
    const relay = current()
    if (relay === undefined || !isRunning()) throw new Error(`relay ${options.name} is not running`)
    const signalAt = Date.now()
    relay.child.signal(signal)
    const exit = await relay.child.exited
    const exitAt = Date.now()
    // Its last log lines may still be on their way after the exit.
    await relay.child.closed
    const done = relay.logs.find((l) => messageOf(l) === "drain.done")
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
    currentSpawnedAt: () => current()?.child.spawnedAt ?? 0,
    isRunning,
    pid: () => (isRunning() ? current()?.child.pid : undefined),
    start,
    stop,
    registrations: () =>
      runs.flatMap((r) => r.logs.filter((l) => messageOf(l) === "tunnel.registered").map((l) => Date.parse(l.timestamp))),
    logs: () => runs.flatMap((r) => r.logs),
    otherOutput: () => runs.flatMap((r) => r.other)
  }
}
