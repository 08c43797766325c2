/**
 * Requests waiting for a host to come back. A request for a host that no relay can serve right
 * now (between its tunnels, or while its agent restarts) is held, not failed, until the directory
 * publishes a registration of that host, on any relay, or `HOLD_MS` passes; then it is routed
 * again, or answered 503. Nothing polls: one fiber reads the directory's registrations and wakes
 * the requests held for that host. At most `MAX_HELD` requests are held at once; past that the
 * answer is 503 at once. A draining relay ends every hold (`endAll`) before it closes its client
 * connections, so a held request gets its 503 instead of a reset; no hold begins after that.
 */
import { type HostId, LogLimits } from "@effect-relay/protocol"
import { Context, Effect, Layer, Stream } from "effect"
import { RelayConfig } from "../config/RelayConfig.js"
import { Directory, type Registration } from "../directory/Directory.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"

/**
 * How a hold ended: a registration of the host came, HOLD_MS passed, too many were held already,
 * or the relay's drain ended it (`endAll`).
 */
export type HoldOutcome = "released_by_event" | "timed_out" | "refused" | "drained"

export class Holds extends Context.Tag("effect-relay/Holds")<Holds, {
  /** Waits for a registration of `hostId` (on any relay), at most HOLD_MS. */
  readonly wait: (hostId: HostId) => Effect.Effect<HoldOutcome>
  /** Requests held now. */
  readonly size: () => number
  /**
   * Ends every hold now with `drained` (its request is answered 503) and every later one at once:
   * for a drain that is about to close the client connections. Returns how many were held.
   */
  readonly endAll: Effect.Effect<number>
}>() {
  static layer = Layer.scoped(
    Holds,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const directory = yield* Directory
      return yield* make({ holdMs: config.holdMs, maxHeld: config.maxHeld }, directory.registrations)
    })
  )
}

/** Holds fed by `registrations` (read by a fiber of the scope's). */
export const make = (options: { readonly holdMs: number; readonly maxHeld: number }, registrations: Stream.Stream<Registration>) =>
  Effect.gen(function*() {
    const waiting = new Map<HostId, Set<(outcome: HoldOutcome) => void>>()
    let held = 0
    let ended = false
    const refusals = LogLimits.gate(5, 10_000)
    /** Over MAX_HELD: counted, and logged at most 5 times every 10 s (each line says how many were left out). */
    const refuse = (hostId: HostId) =>
      Effect.suspend(() => {
        RelayMetrics.limitHit("max_held")
        const suppressed = refusals.admit()
        const log = suppressed === undefined
          ? Effect.void
          : Effect.logWarning("hold.refused").pipe(
            Effect.annotateLogs({ hostId, held, maxHeld: options.maxHeld, ...(suppressed > 0 ? { suppressed } : {}) })
          )
        return Effect.as(Effect.zipRight(log, RelayMetrics.hold("refused")), "refused" as HoldOutcome)
      })

    yield* Stream.runForEach(registrations, (event) =>
      Effect.sync(() => {
        const wake = waiting.get(event.hostId)
        if (wake === undefined) return
        waiting.delete(event.hostId)
        for (const f of wake) f("released_by_event")
      })).pipe(Effect.forkScoped)

    /** A registration of the host (`released_by_event`), or `endAll` (`drained`). */
    const untilRegistered = (hostId: HostId) =>
      Effect.async<HoldOutcome>((resume) => {
        const wake = (outcome: HoldOutcome) => resume(Effect.succeed(outcome))
        let set = waiting.get(hostId)
        if (set === undefined) waiting.set(hostId, set = new Set())
        set.add(wake)
        return Effect.sync(() => {
          const current = waiting.get(hostId)
          if (current === undefined) return
          current.delete(wake)
          if (current.size === 0) waiting.delete(hostId)
        })
      })

    const wait = (hostId: HostId): Effect.Effect<HoldOutcome> =>
      Effect.suspend(() => {
        if (ended) return Effect.as(RelayMetrics.hold("drained"), "drained" as HoldOutcome)
        if (held >= options.maxHeld) return refuse(hostId)
        held++
        return untilRegistered(hostId).pipe(
          Effect.timeoutTo({ duration: options.holdMs, onSuccess: (outcome) => outcome, onTimeout: (): HoldOutcome => "timed_out" }),
          Effect.ensuring(Effect.sync(() => held--)),
          Effect.tap(RelayMetrics.hold)
        )
      })

    const endAll = Effect.sync(() => {
      ended = true
      const count = held
      const all = [...waiting.values()]
      waiting.clear()
      for (const set of all) for (const wake of set) wake("drained")
      return count
    })

    return Holds.of({ wait, size: () => held, endAll })
  })
