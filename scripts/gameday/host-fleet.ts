/**
 * The hosts of a game-day round, from the orchestrator's side: spread over a
 * few worker processes (`host-fleet-worker.ts`), each host a real host agent.
 */
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { sleep } from "../lib/bench.js"
import type { EventLoopDelay, FleetCommand, FleetEvent, TunnelGap } from "./messages.js"
import { startChildWorker } from "./worker.js"

const workerModule = path.join(path.dirname(fileURLToPath(import.meta.url)), "host-fleet-worker.ts")

export interface HostFleet {
  readonly pids: ReadonlyArray<number>
  /** Hosts with at least one tunnel registered right now, over every worker. */
  readonly connected: () => number
  /** Hosts with all their `tunnels` registered right now: the hosts that are back. */
  readonly full: () => number
  readonly total: number
  /** Resolves once every host has all its tunnels registered at the same time. */
  readonly allConnected: (timeoutMs: number) => Promise<void>
  /** The round is measured from now (restarts the workers' event-loop delay statistics). */
  readonly measure: () => void
  /**
   * Every time a host had no tunnel (`gaps`) and fewer than all (`belowAll`) since the fleet
   * started, and each worker's event-loop delay since `measure`.
   */
  readonly report: () => Promise<{
    readonly gaps: ReadonlyArray<TunnelGap>
    readonly belowAll: ReadonlyArray<TunnelGap>
    readonly eventLoopDelayMs: ReadonlyArray<EventLoopDelay>
  }>
  /** Closes every tunnel (1000) and ends the workers; kills them if they do not end in time. */
  readonly stop: () => Promise<void>
}

/** The hosts (all of them: each worker is started with its share) and what every host agent is given (see `messages.ts`). */
export interface HostFleetOptions extends Omit<Extract<FleetCommand, { type: "start" }>, "type" | "startConcurrency"> {
  readonly workers: number
  /** Log file prefix; each worker appends `-<n>.log`. */
  readonly logPrefix: string
}

export const startHostFleet = async (options: HostFleetOptions): Promise<HostFleet> => {
  const count = Math.max(1, Math.min(options.workers, options.hostIds.length))
  const perWorker = Math.ceil(options.hostIds.length / count)
  const workers = Array.from({ length: count }, (_, i) => {
    const worker = startChildWorker<FleetCommand, FleetEvent>(`host worker ${i}`, workerModule, `${options.logPrefix}-${i}.log`)
    return { worker, hostIds: options.hostIds.slice(i * perWorker, (i + 1) * perWorker), connected: 0, full: 0 }
  })
  const waiters: Array<() => void> = []
  for (const w of workers) {
    w.worker.onEvent((event) => {
      if (event.type === "status") {
        w.connected = event.connected
        w.full = event.full
        for (const waiter of waiters.splice(0)) waiter()
      }
    })
  }
  const connected = () => workers.reduce((n, w) => n + w.connected, 0)
  const full = () => workers.reduce((n, w) => n + w.full, 0)
  for (const w of workers) {
    w.worker.send({
      type: "start",
      hostIds: w.hostIds,
      relayUrls: options.relayUrls,
      token: options.token,
      targetUrl: options.targetUrl,
      settings: options.settings,
      tunnels: options.tunnels,
      startConcurrency: 50
    })
  }

  const allConnected = (timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`hosts: ${full()} of ${options.hostIds.length} with ${options.tunnels} tunnel(s) (${connected()} with one) after ${timeoutMs} ms (logs: ${options.logPrefix}-*.log)`)),
        timeoutMs
      )
      const check = () => {
        if (full() >= options.hostIds.length) {
          clearTimeout(timer)
          resolve()
        } else waiters.push(check)
      }
      check()
      // A worker that dies will never connect its hosts.
      for (const w of workers) {
        void w.worker.exited.then(({ code, signal }) => {
          clearTimeout(timer)
          reject(new Error(`${w.worker.name} exited (code ${code}, signal ${signal}) (log: ${options.logPrefix}-*.log)`))
        })
      }
    })

  const report = async () => {
    const reports = await Promise.all(workers.map((w) => w.worker.ask({ type: "report" }, "report", 10_000)))
    return { gaps: reports.flatMap((r) => r.gaps), belowAll: reports.flatMap((r) => r.belowAll), eventLoopDelayMs: reports.map((r) => r.eventLoopDelayMs) }
  }

  const stop = async () => {
    await Promise.all(workers.map(async (w) => {
      const stopped = w.worker.ask({ type: "stop" }, "stopped", 10_000).catch(() => undefined)
      await Promise.race([stopped, w.worker.exited])
      await Promise.race([w.worker.exited, sleep(2_000)])
      await w.worker.kill()
    }))
  }

  const measure = () => {
    for (const w of workers) w.worker.send({ type: "measure" })
  }

  return { pids: workers.map((w) => w.worker.pid), connected, full, total: options.hostIds.length, allConnected, measure, report, stop }
}
