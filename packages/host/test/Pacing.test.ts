import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Ref, TestClock } from "effect"
import {
  Backoff,
  ConnectError,
  Drained,
  HeldHere,
  Pacing,
  pacedReconnectLoop,
  reasonOf,
  RelayBusy,
  SessionClosed,
  type SessionEnd
} from "../src/index.js"

/**
 * The host agent's pacing (Pacing.make) driving the reconnect loop, as a session runs it, under
 * TestClock: an attempt that records when it started and ends the way `endOf(n)` says.
 */
const backoff: Backoff.BackoffOptions = { baseMs: 1_000, capMs: 30_000, jitter: 0.2 }
const drainJitterMs = 250

const startLoop = (endOf: (n: number) => SessionEnd, options: { readonly connectedAt?: ReadonlySet<number> } = {}) =>
  Effect.gen(function*() {
    const starts = yield* Ref.make<ReadonlyArray<number>>([])
    const limits = yield* Ref.make(0)
    const pacer = yield* Pacing.make({
      drainJitterMs,
      heldHereRedials: Pacing.heldHereRedials,
      onHeldHereLimit: Ref.update(limits, (n) => n + 1)
    })
    const attempt = Effect.gen(function*() {
      const now = yield* TestClock.currentTimeMillis
      const n = (yield* Ref.getAndUpdate(starts, (all) => [...all, now])).length
      // A tunnel that came up before it ended (what the session tells its pacer).
      if (options.connectedAt?.has(n)) yield* pacer.connected
      return yield* Effect.fail(endOf(n))
    })
    const schedule = Backoff.schedule(backoff)
    const fiber = yield* Effect.fork(pacedReconnectLoop(attempt, { schedule, pace: pacer.pace, describe: reasonOf }))
    return { starts, fiber, limits }
  })

const gaps = (starts: ReadonlyArray<number>) => starts.slice(1).map((t, i) => t - starts[i]!)

/** A backoff delay: in [nominal * (1 - jitter), nominal]. */
const expectBackoff = (gap: number, nominal: number) => {
  expect(gap).toBeGreaterThanOrEqual(Math.floor(nominal * (1 - backoff.jitter)))
  expect(gap).toBeLessThanOrEqual(nominal)
}

const closed = (code = 1006) => new SessionClosed({ code, reason: "" })
const busy = (retryAfterMs: number | undefined) => new RelayBusy({ retryAfterMs, reason: "try again later" })
const heldHere = () => new HeldHere({ source: "relay" })

describe("Pacing: a drain frame's reconnectWithinMs", () => {
  it.effect("each redial after a drain with reconnectWithinMs comes at a random moment within the window (and uses it)", () =>
    Effect.gen(function*() {
      const windowMs = 10_000
      const { fiber, starts } = yield* startLoop(() => new Drained({ source: "frame", reconnectWithinMs: windowMs }))
      yield* TestClock.adjust("400 seconds")
      const seen = gaps(yield* Ref.get(starts))
      expect(seen.length).toBeGreaterThanOrEqual(40)
      for (const gap of seen) {
        expect(gap).toBeGreaterThanOrEqual(0)
        expect(gap).toBeLessThanOrEqual(windowMs)
      }
      // Spread over the window, not the 250 ms drain jitter (40 draws all under 2.5 s: 0.25^40).
      expect(Math.max(...seen)).toBeGreaterThan(2_500)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a drain without reconnectWithinMs (a 4001 close, an older relay) redials within the drain jitter", () =>
    Effect.gen(function*() {
      const { fiber, starts } = yield* startLoop(() => new Drained({ source: "close" }))
      yield* TestClock.adjust("5 seconds")
      const seen = gaps(yield* Ref.get(starts))
      expect(seen.length).toBeGreaterThanOrEqual(20)
      for (const gap of seen) expect(gap).toBeLessThanOrEqual(drainJitterMs)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a drain resets the backoff: failures after it climb from the base again", () =>
    Effect.gen(function*() {
      // 1 s, 2 s, 4 s; the drain (window 3 s); then 1 s, 2 s again.
      const { fiber, starts } = yield* startLoop((n) => (n === 3 ? new Drained({ source: "frame", reconnectWithinMs: 3_000 }) : closed()))
      yield* TestClock.adjust("20 seconds")
      const seen = gaps(yield* Ref.get(starts))
      ;[1_000, 2_000, 4_000].forEach((ms, i) => expectBackoff(seen[i]!, ms))
      expect(seen[3]!).toBeLessThanOrEqual(3_000)
      expectBackoff(seen[4]!, 1_000)
      expectBackoff(seen[5]!, 2_000)
      yield* Fiber.interrupt(fiber)
    }))
})

describe("Pacing: 1013 with retryAfterMs (a relay admitting registrations at its rate)", () => {
  it.effect("the retry waits retryAfterMs plus jitter, every time, and neither climbs nor resets the backoff", () =>
    Effect.gen(function*() {
      const retryAfterMs = 3_000
      const jitterMax = Pacing.relayBusyJitterMs(retryAfterMs)
      expect(jitterMax).toBe(600)
      // 1006, 1006 (1 s, 2 s), then four 1013s, then 1006s: the backoff goes on from 4 s, not 64 s or 1 s.
      const { fiber, starts } = yield* startLoop((n) => (n >= 2 && n <= 5 ? busy(retryAfterMs) : closed()))
      yield* TestClock.adjust("60 seconds")
      const seen = gaps(yield* Ref.get(starts))
      expectBackoff(seen[0]!, 1_000)
      expectBackoff(seen[1]!, 2_000)
      for (const gap of seen.slice(2, 6)) {
        expect(gap).toBeGreaterThanOrEqual(retryAfterMs)
        expect(gap).toBeLessThanOrEqual(retryAfterMs + jitterMax)
      }
      expectBackoff(seen[6]!, 4_000)
      expectBackoff(seen[7]!, 8_000)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a small retryAfterMs gets up to 250 ms of jitter; a 1013 that names no wait climbs the backoff", () =>
    Effect.gen(function*() {
      expect(Pacing.relayBusyJitterMs(100)).toBe(Pacing.relayBusyJitterMinMs)
      const { fiber, starts } = yield* startLoop((n) => (n < 10 ? busy(100) : busy(undefined)))
      yield* TestClock.adjust("30 seconds")
      const seen = gaps(yield* Ref.get(starts))
      for (const gap of seen.slice(0, 10)) {
        expect(gap).toBeGreaterThanOrEqual(100)
        expect(gap).toBeLessThanOrEqual(100 + Pacing.relayBusyJitterMinMs)
      }
      expectBackoff(seen[10]!, 1_000)
      expectBackoff(seen[11]!, 2_000)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("after a drain, a 1013 waits its retryAfterMs and the fast return is still there for refused connects", () =>
    Effect.gen(function*() {
      const refused = new ConnectError({ url: "ws://relay", cause: new Error("ECONNREFUSED") })
      const starts = yield* Ref.make<ReadonlyArray<number>>([])
      const pacer = yield* Pacing.make({ drainJitterMs: 0, heldHereRedials: 3 })
      const schedule = Backoff.schedule(backoff)
      const afterDrain = Backoff.afterDrain<SessionEnd>({ intervalMs: 250, windowMs: 3_000 }, (e) => e._tag === "ConnectError", schedule)
      const ends: ReadonlyArray<SessionEnd> = [new Drained({ source: "frame", reconnectWithinMs: 0 }), busy(1_000), refused, refused]
      const attempt = Effect.gen(function*() {
        const now = yield* TestClock.currentTimeMillis
        const n = (yield* Ref.getAndUpdate(starts, (all) => [...all, now])).length
        return yield* Effect.fail(ends[n] ?? closed())
      })
      const fiber = yield* Effect.fork(pacedReconnectLoop(attempt, { schedule, afterReset: afterDrain, pace: pacer.pace, describe: reasonOf }))
      yield* TestClock.adjust("10 seconds")
      const seen = gaps(yield* Ref.get(starts))
      expect(seen[0]!).toBe(0)
      expect(seen[1]!).toBeGreaterThanOrEqual(1_000)
      expect(seen[1]!).toBeLessThanOrEqual(1_250)
      // The refused connects after it: the short cadence (250 ms ±20%), not the backoff.
      for (const gap of seen.slice(2, 4)) {
        expect(gap).toBeGreaterThanOrEqual(200)
        expect(gap).toBeLessThanOrEqual(300)
      }
      yield* Fiber.interrupt(fiber)
    }))
})

describe("Pacing: 4003 held here (this relay already holds another tunnel of the agent)", () => {
  it.effect(`redials within the drain jitter ${Pacing.heldHereRedials} times in a row, then waits for the backoff, which climbs to its cap`, () =>
    Effect.gen(function*() {
      const { fiber, limits, starts } = yield* startLoop(heldHere)
      yield* TestClock.adjust("120 seconds")
      const seen = gaps(yield* Ref.get(starts))
      for (const gap of seen.slice(0, Pacing.heldHereRedials)) expect(gap).toBeLessThanOrEqual(drainJitterMs)
      // A single relay behind the URL: no spinning, the backoff from its base up to its cap.
      ;[1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000].forEach((ms, i) => expectBackoff(seen[Pacing.heldHereRedials + i]!, ms))
      // Said once, however long it goes on.
      expect(yield* Ref.get(limits)).toBe(1)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a tunnel that comes up, or another kind of end, starts a new row of quick redials", () =>
    Effect.gen(function*() {
      // 0-3 held here (3 quick, then the backoff); 4 came up and was held here at once after;
      // 5-6 held here; 7 refused (1006); 8-10 held here.
      const kinds = ["h", "h", "h", "h", "h", "h", "h", "c", "h", "h", "h", "h"]
      const { fiber, limits, starts } = yield* startLoop((n) => (kinds[n] === "c" ? closed() : heldHere()), { connectedAt: new Set([4]) })
      yield* TestClock.adjust("60 seconds")
      const seen = gaps(yield* Ref.get(starts))
      for (const i of [0, 1, 2]) expect(seen[i]!).toBeLessThanOrEqual(drainJitterMs)
      expectBackoff(seen[3]!, 1_000)
      // Attempt 4 came up: the row starts over (4, 5, 6 quick; the backoff did not climb for them).
      for (const i of [4, 5, 6]) expect(seen[i]!).toBeLessThanOrEqual(drainJitterMs)
      // Attempt 7 closed 1006: the backoff's next step (2 s), then a new row of 3 quick redials.
      expectBackoff(seen[7]!, 2_000)
      for (const i of [8, 9, 10]) expect(seen[i]!).toBeLessThanOrEqual(drainJitterMs)
      expectBackoff(seen[11]!, 4_000)
      expect(yield* Ref.get(limits)).toBe(2)
      yield* Fiber.interrupt(fiber)
    }))
})
