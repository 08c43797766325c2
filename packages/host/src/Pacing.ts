/**
 * How one session paces its next dial after each way a tunnel ends (see `pacedReconnectLoop`):
 *
 * | end | wait before the next dial | backoff schedule |
 * |---|---|---|
 * | `DrainSignal` | random in [0, the drain frame's `reconnectWithinMs`], else [0, `drainJitterMs`] | reset (then the fast retry after a drain) |
 * | `HeldHere`, up to `heldHereRedials` in a row | random in [0, `drainJitterMs`] | untouched |
 * | `HeldHere`, more in a row | the schedule's next delay | climbs |
 * | `RelayBusy` with `retryAfterMs` | `retryAfterMs` plus random in [0, max(250, retryAfterMs / 5)] | untouched |
 * | anything else | the schedule's next delay | climbs |
 *
 * Any end other than `HeldHere`, and a tunnel that comes up, end a row of `HeldHere`s.
 */
import { Effect, Random, Ref } from "effect"
import type { SessionEnd } from "./Errors.js"
import { Drained } from "./Errors.js"
import { Pace } from "./ReconnectLoop.js"

export interface PacingOptions {
  /** The drain window when the drain frame gave none, and the jitter of a redial after `HeldHere`. */
  readonly drainJitterMs: number
  /** `HeldHere` answers in a row redialled at once (within the jitter); the next ones wait for the backoff. */
  readonly heldHereRedials: number
  /** Runs once each time a row of `HeldHere`s goes past `heldHereRedials`. */
  readonly onHeldHereLimit?: Effect.Effect<void>
}

/** Redials after `HeldHere` before the backoff takes over: a single relay behind one URL must not spin. */
export const heldHereRedials = 3

/** The least jitter added to a `RelayBusy`'s `retryAfterMs`, in ms (else a fifth of it). */
export const relayBusyJitterMinMs = 250

/** The largest jitter added to a relay's `retryAfterMs`. */
export const relayBusyJitterMs = (retryAfterMs: number): number =>
  Math.max(relayBusyJitterMinMs, Math.round(retryAfterMs / 5))

/** A random integer in [0, maxMs]. */
const upTo = (maxMs: number): Effect.Effect<number> => {
  const max = Math.max(0, Math.floor(maxMs))
  return max === 0 ? Effect.succeed(0) : Random.nextIntBetween(0, max + 1)
}

export interface Pacer {
  readonly pace: (end: SessionEnd) => Effect.Effect<Pace>
  /** The tunnel came up: a row of `HeldHere`s is over. */
  readonly connected: Effect.Effect<void>
}

/** One session's pacing, with its own count of `HeldHere`s in a row. */
export const make = (options: PacingOptions): Effect.Effect<Pacer> =>
  Effect.map(Ref.make(0), (heldInARow): Pacer => ({
    connected: Ref.set(heldInARow, 0),
    pace: (end) => {
      if (end._tag === "HeldHere") {
        return Effect.flatMap(Ref.updateAndGet(heldInARow, (n) => n + 1), (n): Effect.Effect<Pace> =>
          n <= options.heldHereRedials
            ? Effect.map(upTo(options.drainJitterMs), (ms) => Pace.After({ ms }))
            : Effect.as(n === options.heldHereRedials + 1 ? options.onHeldHereLimit ?? Effect.void : Effect.void, Pace.Backoff()))
      }
      return Effect.zipRight(Ref.set(heldInARow, 0), paceOther(end, options))
    }
  }))

const paceOther = (end: Exclude<SessionEnd, { _tag: "HeldHere" }>, options: PacingOptions): Effect.Effect<Pace> => {
  switch (end._tag) {
    case "DrainSignal": {
      const window = end instanceof Drained && end.reconnectWithinMs !== undefined ? end.reconnectWithinMs : options.drainJitterMs
      return Effect.map(upTo(window), (ms) => Pace.Reset({ ms }))
    }
    case "RelayBusy":
      return end.retryAfterMs === undefined
        ? Effect.succeed(Pace.Backoff())
        : Effect.map(upTo(relayBusyJitterMs(end.retryAfterMs)), (jitter) => Pace.After({ ms: end.retryAfterMs! + jitter }))
    default:
      return Effect.succeed(Pace.Backoff())
  }
}
