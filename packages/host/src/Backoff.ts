/**
 * The host agent's reconnect schedule: exponential from `baseMs`, doubling,
 * capped at `capMs`, each delay shrunk by a random factor in
 * `[1 - jitter, 1]` so hosts spread out but never wait longer than the cap.
 */
import { Duration, Effect, Random, Schedule } from "effect"

export interface BackoffOptions {
  readonly baseMs: number
  readonly capMs: number
  /** Fraction in [0, 1]: 0.2 gives delays between 80% and 100% of the nominal one. */
  readonly jitter: number
}

export const defaults: BackoffOptions = { baseMs: 1_000, capMs: 5_000, jitter: 0.2 }

/** The delay before retry `n` (0-based) without jitter: min(cap, base * 2^n). */
export const nominalMs = (n: number, options: BackoffOptions): number =>
  Math.min(options.capMs, options.baseMs * Math.pow(2, n))

const clampJitter = (jitter: number) => Math.min(1, Math.max(0, jitter))

/** The delay before retry `n`, jittered with the `Random` service. */
export const delayMs = (n: number, options: BackoffOptions): Effect.Effect<number> => {
  const nominal = nominalMs(n, options)
  const jitter = clampJitter(options.jitter)
  return jitter === 0
    ? Effect.succeed(nominal)
    : Effect.map(Random.nextRange(1 - jitter, 1), (factor) => Math.round(nominal * factor))
}

/**
 * A schedule that recurs forever; it outputs the delay it waits before each
 * recurrence, so a caller can log it.
 */
export const schedule = (options: BackoffOptions = defaults): Schedule.Schedule<Duration.Duration> =>
  Schedule.forever.pipe(
    Schedule.mapEffect((n) => Effect.map(delayMs(n, options), Duration.millis)),
    Schedule.addDelay((delay) => delay)
  )

export interface FastReturnOptions {
  /** Retry this often (jittered by ±20%)... */
  readonly intervalMs: number
  /** ...for this long, as long as attempts fail to connect at all. */
  readonly windowMs: number
}

/**
 * The schedule after a drain: a relay restarting in place refuses connections
 * for a few seconds, so a failed connect is retried on a short flat cadence
 * for a window; the first other failure (a tunnel that opened and then
 * closed, say with 1001), or the end of the window, hands over to `then`
 * from its start.
 */
export const afterDrain = <E>(
  fast: FastReturnOptions,
  isConnectFailure: (error: E) => boolean,
  then: Schedule.Schedule<Duration.Duration>
): Schedule.Schedule<Duration.Duration, E> =>
  Schedule.spaced(Duration.millis(fast.intervalMs)).pipe(
    Schedule.jittered,
    Schedule.whileInput(isConnectFailure),
    Schedule.upTo(Duration.millis(fast.windowMs)),
    Schedule.delays,
    Schedule.andThen(then),
    Schedule.map((delay) => (typeof delay === "number" ? Duration.millis(delay) : delay))
  )
