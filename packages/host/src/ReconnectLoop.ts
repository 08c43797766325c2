import type { DrainSignal } from "@effect-relay/protocol"
import { Duration, Effect, Random, Schedule } from "effect"

/**
 * Runs `attempt` (one tunnel session, which only ever ends with an error)
 * forever:
 * - a `DrainSignal` restarts `schedule` from zero and runs the next attempt
 *   after a random delay in [0, drainJitterMs], so hosts leaving a draining
 *   relay do not all land on the next one in the same millisecond;
 * - every other error waits for `schedule`'s next delay, which keeps climbing
 *   until a `DrainSignal` resets it.
 *
 * Reset is explicit: each DrainSignal ends an inner `Effect.retry`, and the
 * outer loop starts a new one with a fresh schedule: `afterDrain` when given
 * (a short flat cadence for a relay restarting in place, then the usual
 * climb), else `schedule`. Schedules should never end; if one does, the loop
 * starts it over.
 *
 * It knows nothing of sockets, so it can be tested under `TestClock`.
 */
export const reconnectLoop = <E extends { readonly _tag: string }, R, R2>(
  attempt: Effect.Effect<never, E | DrainSignal, R>,
  schedule: Schedule.Schedule<Duration.Duration, Exclude<E, DrainSignal>, R2>,
  drainJitterMs: number,
  describe: (error: Exclude<E, DrainSignal>) => string = (error) => error._tag,
  afterDrain: Schedule.Schedule<Duration.Duration, Exclude<E, DrainSignal>, R2> = schedule
): Effect.Effect<never, never, R | R2> => {
  const logged = (s: Schedule.Schedule<Duration.Duration, Exclude<E, DrainSignal>, R2>) => loggedSchedule(s, describe)

  const untilDrain = (s: Schedule.Schedule<Duration.Duration, Exclude<E, DrainSignal>, R2>) =>
    (attempt as Effect.Effect<never, Exclude<E, DrainSignal> | DrainSignal, R>).pipe(
      Effect.catchIf(isDrainSignal, Effect.succeed),
      Effect.retry(logged(s)),
      Effect.either
    )

  const jitter = Effect.gen(function*() {
    const ms = drainJitterMs > 0 ? yield* Random.nextIntBetween(0, Math.floor(drainJitterMs) + 1) : 0
    yield* Effect.logInfo("tunnel.reconnect_in").pipe(Effect.annotateLogs({ ms, reason: "drain" }))
    if (ms > 0) yield* Effect.sleep(Duration.millis(ms))
  })

  const loop = (drained: boolean): Effect.Effect<never, never, R | R2> =>
    untilDrain(drained ? afterDrain : schedule).pipe(
      Effect.flatMap((ended) =>
        ended._tag === "Right" ? Effect.zipRight(jitter, loop(true)) : loop(drained)
      )
    )
  return loop(false)
}

const isDrainSignal = (error: { readonly _tag: string }): error is DrainSignal => error._tag === "DrainSignal"

/** `s` with a `tunnel.reconnect_in {ms, reason}` log line before each retry. */
const loggedSchedule = <E, R>(s: Schedule.Schedule<Duration.Duration, E, R>, describe: (error: E) => string) =>
  Schedule.intersect(Schedule.identity<E>(), s).pipe(
    Schedule.tapOutput(([error, delay]) =>
      Effect.logInfo("tunnel.reconnect_in").pipe(
        Effect.annotateLogs({ ms: Duration.toMillis(delay), reason: describe(error) })
      )
    )
  )

/**
 * The reconnect loop as it was before drains were handled (kept to measure
 * the difference, see `resetOnDrain`): every end of a session, a
 * `DrainSignal` included, waits for `schedule`'s next delay, which only ever
 * climbs; no drain jitter, no fast retry after a drain.
 */
export const reconnectLoopWithoutDrainReset = <E extends { readonly _tag: string }, R, R2>(
  attempt: Effect.Effect<never, E, R>,
  schedule: Schedule.Schedule<Duration.Duration, E, R2>,
  describe: (error: E) => string = (error) => error._tag
): Effect.Effect<never, never, R | R2> =>
  attempt.pipe(
    Effect.retry(loggedSchedule(schedule, describe)),
    Effect.either,
    // A schedule that ends starts over, as in `reconnectLoop`.
    Effect.zipRight(Effect.suspend(() => reconnectLoopWithoutDrainReset(attempt, schedule, describe)))
  )
