/**
 * Requests waiting for a host to come back. A request for a host that no relay can serve right
 * now (between its tunnels, or while its agent restarts) is held, not failed, until the directory
 * publishes a registration of that host, on any relay, or `HOLD_MS` passes; then it is routed
 * again, or answered 503. Nothing polls: one fiber reads the directory's registrations and wakes
 * the requests held for that host. At most `MAX_HELD` requests are held at once; past that the
 * answer is 503 at once.
 */
import { type HostId, LogLimits } from "@effect-relay/protocol"
import { Context, Effect, Layer, Stream } from "effect"
import { RelayConfig } from "../config/RelayConfig.js"
import { Directory, type Registration } from "../directory/Directory.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"

/** How a hold ended: a registration of the host came, HOLD_MS passed, or too many were held already. */
export type HoldOutcome = "released_by_event" | "timed_out" | "refused"

export class Holds extends Context.Tag("effect-relay/Holds")<Holds, {
  /** Waits for a registration of `hostId` (on any relay), at most HOLD_MS. */
  readonly wait: (hostId: HostId) => Effect.Effect<HoldOutcome>
  /** Requests held now. */
  readonly size: () => number
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
    const waiting = new Map<HostId, Set<() => void>>()
    let held = 0
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
        for (const f of wake) f()
      })).pipe(Effect.forkScoped)

    const untilRegistered = (hostId: HostId) =>
      Effect.async<void>((resume) => {
        const wake = () => resume(Effect.void)
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
        if (held >= options.maxHeld) return refuse(hostId)
        held++
        return untilRegistered(hostId).pipe(
          Effect.timeoutTo({ duration: options.holdMs, onSuccess: (): HoldOutcome => "released_by_event", onTimeout: (): HoldOutcome => "timed_out" }),
          Effect.ensuring(Effect.sync(() => held--)),
          Effect.tap(RelayMetrics.hold)
        )
      })

    return Holds.of({ wait, size: () => held })
  })
