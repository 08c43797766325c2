/**
 * The load generator of the game day, from the orchestrator's side: a worker
 * process (`load-generator-worker.ts`) acting as a load balancer in front of
 * the relays, configured (the relays of the round), run, measured and ended
 * once a round.
 */
import { Effect } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { LoadCommand, LoadEvent, LoadReport, RelaySignal } from "./messages.js"
import { startChildWorker } from "./worker.js"

const workerModule = path.join(path.dirname(fileURLToPath(import.meta.url)), "load-generator-worker.ts")

export interface LoadGenerator {
  readonly pid: number
  /** The relays the load balancer sends to from now on (between rounds, not while it runs). */
  readonly configure: (relayUrls: ReadonlyArray<string>) => Promise<void>
  /** Starts sending (every host in turn, at the configured rate). */
  readonly run: () => Promise<void>
  /** Counts from now on; resolves with the time the measurement starts. */
  readonly measure: () => Promise<number>
  /** Stops sending, waits for the requests in flight, and reports what was measured (with the requests in flight at each signal). */
  readonly end: (signals: ReadonlyArray<RelaySignal>) => Promise<LoadReport>
}

/** What the worker is configured with (see `messages.ts`; the relays come with each round), and where it logs. */
export interface LoadGeneratorOptions extends Omit<Extract<LoadCommand, { type: "configure" }>, "type" | "relayUrls"> {
  readonly logFile: string
}

/** The generator, started; killed when the scope closes. */
export const startLoadGenerator = (options: LoadGeneratorOptions) =>
  Effect.acquireRelease(
    Effect.sync(() => startChildWorker<LoadCommand, LoadEvent>("load generator", workerModule, options.logFile)),
    (worker) => Effect.promise(() => worker.kill())
  ).pipe(
    Effect.map((worker): LoadGenerator => ({
      pid: worker.pid,
      configure: async (relayUrls) =>
        void await worker.ask({
          type: "configure",
          relayUrls,
          hostIds: options.hostIds,
          token: options.token,
          rate: options.rate,
          timeoutMs: options.timeoutMs
        }, "configured", 30_000),
      run: async () => void await worker.ask({ type: "run" }, "running", 10_000),
      measure: async () => (await worker.ask({ type: "measure" }, "measuring", 10_000)).at,
      // Requests still in flight may take up to their timeout.
      end: (signals) => worker.ask({ type: "end", signals }, "report", options.timeoutMs + 30_000)
    }))
  )
