import type { DrainSignal } from "@effect-relay/protocol"
import { Data, Duration, Effect, Random, Schedule } from "effect"

/**
 * What the end of an attempt does to the wait before the next one:
 * - `Backoff`: the schedule's next delay (the schedule climbs);
 * - `After`: wait `ms`, and leave the schedule where it is (neither climbed nor reset);
 * - `Reset`: wait `ms`, then start over with a fresh `afterReset` schedule (a drain).
 */
export type Pace = Data.TaggedEnum<{
  Backoff: {}
  After: { readonly ms: number }
  Reset: { readonly ms: number }
}>
export const Pace = Data.taggedEnum<Pace>()

export interface PacedLoopOptions<E, R2> {
  /** Between attempts whose end is paced `Backoff`. */
  readonly schedule: Schedule.Schedule<Duration.Duration, E, R2>
  /** The schedule after a `Reset` (default `schedule`). */
  readonly afterReset?: Schedule.Schedule<Duration.Duration, E, R2>
  /** How the end of an attempt paces the next one. */
  readonly pace: (error: E) => Effect.Effect<Pace>
  /** The `reason` of the `tunnel.reconnect_in` log line. */
  readonly describe: (error: E) => string
}

/**
 * Runs `attempt` (one tunnel session, which only ever ends with an error) forever, each end
 * paced by `options.pace`.
 *
 * The schedule only sees the ends paced `Backoff`: an `After` end waits inside the attempt (the
 * retry around it never hears of it, so its schedule neither climbs nor resets), and a `Reset`
 * end succeeds, which ends the inner `Effect.retry`; the outer loop then waits and starts a new
 * retry with a fresh `afterReset`. Schedules should never end; if one does, the loop starts it
 * over. It knows nothing of sockets, so it can be tested under `TestClock`.
 */
export const pacedReconnectLoop = <E, R, R2>(
  attempt: Effect.Effect<never, E, R>,
  options: PacedLoopOptions<E, R2>
): Effect.Effect<never, never, R | R2> => {
  const { describe, pace, schedule } = options
  const afterReset = options.afterReset ?? schedule
  const waitLogged = (ms: number, error: E) =>
    Effect.logInfo("tunnel.reconnect_in").pipe(
      Effect.annotateLogs({ ms, reason: describe(error) }),
      Effect.zipRight(ms > 0 ? Effect.sleep(Duration.millis(ms)) : Effect.void)
    )

  // Succeeds with the wait of a `Reset`; fails with the ends the schedule paces.
  const paced: Effect.Effect<readonly [number, E], E, R> = Effect.suspend(() =>
    attempt.pipe(
      Effect.catchAll((error) =>
        Effect.flatMap(pace(error), (p): Effect.Effect<readonly [number, E], E, R> => {
          switch (p._tag) {
            case "Backoff":
              return Effect.fail(error)
            case "After":
              return Effect.zipRight(waitLogged(p.ms, error), paced)
            case "Reset":
              return Effect.succeed([p.ms, error] as const)
          }
        })
      )
    )
  )

  const loop = (reset: boolean): Effect.Effect<never, never, R | R2> =>
    paced.pipe(
      Effect.retry(loggedSchedule(reset ? afterReset : schedule, describe)),
      Effect.either,
      Effect.flatMap((ended) =>
        ended._tag === "Right"
          ? Effect.zipRight(waitLogged(ended.right[0], ended.right[1]), loop(true))
          : loop(reset)
      )
    )
  return loop(false)
}

/**
 * Runs `attempt` (one tunnel session, which only ever ends with an error)
 * forever:
 * - a `DrainSignal` restarts `schedule` from zero and runs the next attempt
 *   after a random delay in [0, drainJitterMs], so hosts leaving a draining
 *   relay do not all land on the next one in the same millisecond;
 * - every other error waits for `schedule`'s next delay, which keeps climbing
 *   until a `DrainSignal` resets it.
 *
 * After a drain the schedule is `afterDrain` when given (a short flat cadence
 * for a relay restarting in place, then the usual climb), else `schedule`.
 * The host agent paces more kinds of ends (see `Pacing.ts`); this is
 * `pacedReconnectLoop` with drains alone.
 */
export const reconnectLoop = <E extends { readonly _tag: string }, R, R2>(
  attempt: Effect.Effect<never, E | DrainSignal, R>,
  schedule: Schedule.Schedule<Duration.Duration, Exclude<E, DrainSignal>, R2>,
  drainJitterMs: number,
  describe: (error: Exclude<E, DrainSignal>) => string = (error) => error._tag,
  afterDrain: Schedule.Schedule<Duration.Duration, Exclude<E, DrainSignal>, R2> = schedule
): Effect.Effect<never, never, R | R2> => {
  type Other = Exclude<E, DrainSignal>
  const window = Math.max(0, Math.floor(drainJitterMs))
  return pacedReconnectLoop<E | DrainSignal, R, R2>(attempt, {
    // A DrainSignal never reaches the schedules: it is paced `Reset`.
    schedule: schedule as Schedule.Schedule<Duration.Duration, E | DrainSignal, R2>,
    afterReset: afterDrain as Schedule.Schedule<Duration.Duration, E | DrainSignal, R2>,
    pace: (error) =>
      isDrainSignal(error)
        ? Effect.map(Random.nextIntBetween(0, window + 1), (ms) => Pace.Reset({ ms }))
        : Effect.succeed(Pace.Backoff()),
    describe: (error) => (isDrainSignal(error) ? "drain" : describe(error as Other))
  })
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
