import { Context, Effect, Fiber, Layer, Metric, Option, Runtime, Schedule } from "effect"
import { RelayConfig } from "./config/RelayConfig.js"
import { Directory } from "./directory/Directory.js"
import { RelayServer } from "./http/RelayServer.js"
import * as RelayMetrics from "./metrics/RelayMetrics.js"
import { Holds } from "./routing/Holds.js"
import { Draining } from "./tunnel/Draining.js"
import { TunnelRegistry } from "./tunnel/TunnelRegistry.js"

export interface DrainOptions {
  /**
   * What to do when the drain overruns `drainDeadlineMs`, after logging what was
   * still open. The CLI exits 1; an embedding program may choose otherwise.
   * It runs from a plain timer, not a fiber: a runtime busy closing thousands of
   * tunnels cannot delay it.
   */
  readonly onDeadline?: () => void
  /**
   * Exit at once, with a log line, on a second SIGINT/SIGTERM during the drain.
   * Only for a process that owns its signals (the CLI).
   */
  readonly exitOnSecondSignal?: boolean
}

/**
 * The drain: what this relay does when its scope closes, which is what an
 * interrupt from the signal handler (SIGINT/SIGTERM through `runMain`) does.
 * Built after the server, so its finalizer runs first:
 * 1. flip to draining (`/ready` 503, `Connection: close` on every response,
 *    registrations refused 4001);
 * 2. send the directory's one clear of this relay's entries (awaited in step 5);
 * 3. send every host `{type:"drain", reconnectWithinMs}`, then close every tunnel's scope:
 *    each tunnel's finalizer waits up to the flush window for in-flight responses (idle
 *    ones do not wait) and closes 4001; new requests meanwhile go to the hosts' other relays;
 * 4. stop listening (open until now for peers and late load-balanced requests), give the
 *    requests still running the flush window, answer the requests still held 503 (with the
 *    in-memory directory at once: no other relay can register their hosts), close what is
 *    left of client connections;
 * 5. await the directory clear;
 * each phase logged with its duration, the whole bounded by a deadline.
 */
export class Drain extends Context.Tag("effect-relay/Drain")<Drain, {
  /** Runs the drain now (once; later calls wait for nothing and return). */
  readonly run: Effect.Effect<void>
}>() {
  static layer = (options: DrainOptions = {}) =>
    Layer.scoped(
      Drain,
      Effect.gen(function*() {
        const config = yield* RelayConfig
        const draining = yield* Draining
        const server = yield* RelayServer
        const registry = yield* TunnelRegistry
        const directory = yield* Directory
        const holds = yield* Holds
        const runtime = yield* Effect.runtime<never>()
        const owner = registry.owner

        const secondSignal = (signal: NodeJS.Signals) => () => {
          Runtime.runSync(runtime)(
            Effect.logError("drain.aborted").pipe(Effect.annotateLogs({ signal, reason: "second signal during drain" }))
          )
          process.exit(signal === "SIGINT" ? 130 : 143)
        }

        const deadline = (start: number) =>
          setTimeout(() => {
            Runtime.runSync(runtime)(
              Effect.logError("drain.deadline_exceeded").pipe(
                Effect.annotateLogs({
                  ms: Date.now() - start,
                  deadlineMs: config.drainDeadlineMs,
                  openTunnels: registry.size(),
                  hostIds: registry.hostIds().slice(0, 100)
                })
              )
            )
            options.onDeadline?.()
          }, config.drainDeadlineMs)

        const run = Effect.gen(function*() {
          if (!(yield* draining.begin)) return
          const start = Date.now()
          const since = () => Date.now() - start
          yield* Metric.increment(RelayMetrics.drainsTotal)
          yield* Effect.logInfo("drain.start").pipe(Effect.annotateLogs({ tunnels: registry.size() }))
          const timer = deadline(start)
          if (options.exitOnSecondSignal) {
            process.once("SIGINT", secondSignal("SIGINT"))
            process.once("SIGTERM", secondSignal("SIGTERM"))
          }

          // The directory's one clear of this relay's entries runs while the tunnels close: its
          // reply then comes before the hosts' answers to thousands of close frames, not behind
          // them. Safe to run early: registrations are refused from now on, one still being written
          // is rolled back when it sees the drain, and the clear only takes entries this relay
          // owns (a host that already registered elsewhere keeps its new entry).
          const clearStart = Date.now()
          let clearMs = 0
          const clearing = yield* directory.clearOwn(owner).pipe(
            Effect.tap(() => Effect.sync(() => clearMs = Date.now() - clearStart)),
            // The script is idempotent: a timeout (a busy event loop can make the reply late) is retried.
            Effect.tapError((e) => Effect.logWarning("drain.directory_clear_retry", e.message)),
            Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.intersect(Schedule.recurs(3)))),
            Effect.tapError((e) => Effect.logError("drain.directory_clear_failed", e.message)),
            Effect.orElseSucceed(() => -1),
            Effect.fork
          )

          const report = yield* registry.closeAll(({ notified, reconnectWithinMs }) =>
            Effect.logInfo("drain.notified").pipe(Effect.annotateLogs({ tunnels: notified, reconnectWithinMs, ms: since() }))
          )
          yield* Effect.logInfo("drain.closed").pipe(Effect.annotateLogs({ tunnels: report.tunnels, ms: since() }))

          // The listener stayed open while the tunnels drained: requests from peers, and from a load
          // balancer that had not yet seen /ready's 503, were served through the hosts' other relays.
          // Now it stops; every response since the drain began said `Connection: close`, and the
          // requests still running get the flush window (within the deadline, a second short of it).
          yield* server.stopAccepting
          yield* Effect.logInfo("drain.stopped_accepting").pipe(Effect.annotateLogs({ ms: since() }))
          // A held request waits for its host to register somewhere. With the in-memory directory
          // nothing can release it any more (this relay refuses registrations, and there is no
          // other): it is answered now. With a shared one, another relay may still register the
          // host within the flush window; what is still held then is answered before the
          // connections close, so no held request is reset.
          const endHolds = Effect.flatMap(holds.endAll, (held) =>
            held === 0 ? Effect.void : Effect.logInfo("drain.holds_ended").pipe(Effect.annotateLogs({ held, ms: since() })))
          if (Option.isNone(config.redisUrl)) yield* endHolds
          yield* server.awaitRequests(Math.max(0, Math.min(config.drainFlushMs, config.drainDeadlineMs - since() - 1000)))
          yield* endHolds
          yield* server.awaitRequests(Math.max(0, Math.min(500, config.drainDeadlineMs - since() - 500)))
          yield* server.closeConnections

          const entries = yield* Fiber.join(clearing)
          yield* Effect.logInfo("drain.directory_cleared").pipe(
            Effect.annotateLogs({ entries, ms: since(), clearMs })
          )
          clearTimeout(timer)
          yield* Metric.update(RelayMetrics.drainDuration, since() / 1000)
          yield* Effect.logInfo("drain.done").pipe(Effect.annotateLogs({ ms: since() }))
        })

        yield* Effect.addFinalizer(() => run)
        return Drain.of({ run })
      })
    )
}
