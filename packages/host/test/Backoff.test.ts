import { DrainSignal } from "@effect-relay/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect, Fiber, Ref, TestClock } from "effect"
import { Backoff, reconnectLoop, reconnectLoopWithoutDrainReset } from "../src/index.js"

class Closed extends Data.TaggedError("Closed")<{ readonly code: number }> {}

const options: Backoff.BackoffOptions = { baseMs: 1_000, capMs: 5_000, jitter: 0.2 }

/**
 * Runs the reconnect loop with an attempt that records when it started and
 * ends the way `endOf(n)` says (n = 0-based attempt number).
 */
class Refused extends Data.TaggedError("Refused")<{}> {}

const startLoop = (endOf: (n: number) => Closed | Refused | DrainSignal, drainJitterMs = 250, fastReturn = false) =>
  Effect.gen(function*() {
    const starts = yield* Ref.make<ReadonlyArray<number>>([])
    const attempt = Effect.gen(function*() {
      const now = yield* TestClock.currentTimeMillis
      const n = (yield* Ref.getAndUpdate(starts, (all) => [...all, now])).length
      return yield* Effect.fail(endOf(n))
    })
    const schedule = Backoff.schedule(options)
    const afterDrain = fastReturn
      ? Backoff.afterDrain<Closed | Refused>({ intervalMs: 250, windowMs: 3_000 }, (e) => e._tag === "Refused", schedule)
      : schedule
    const fiber = yield* Effect.fork(reconnectLoop(attempt, schedule, drainJitterMs, (e) => e._tag, afterDrain))
    return { starts, fiber }
  })

const gaps = (starts: ReadonlyArray<number>) => starts.slice(1).map((t, i) => t - starts[i]!)

const expectWithin = (gap: number, nominal: number) => {
  expect(gap).toBeGreaterThanOrEqual(Math.floor(nominal * (1 - options.jitter)))
  expect(gap).toBeLessThanOrEqual(nominal)
}

describe("Backoff.schedule", () => {
  it("nominal delays double from the base and stop at the cap", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 50, 2000].map((n) => Backoff.nominalMs(n, options))).toEqual([
      1_000, 2_000, 4_000, 5_000, 5_000, 5_000, 5_000, 5_000, 5_000
    ])
  })

  it.effect("jittered delays stay in [nominal * (1 - jitter), nominal]", () =>
    Effect.gen(function*() {
      for (let n = 0; n < 8; n++) {
        for (let i = 0; i < 200; i++) {
          expectWithin(yield* Backoff.delayMs(n, options), Backoff.nominalMs(n, options))
        }
      }
    }))
})

describe("reconnectLoop", () => {
  it.effect("retries after 1 s, 2 s, 4 s, 5 s, 5 s... each within the jitter band", () =>
    Effect.gen(function*() {
      const { fiber, starts } = yield* startLoop(() => new Closed({ code: 1006 }))
      yield* TestClock.adjust("1 millis")
      expect(yield* Ref.get(starts)).toEqual([0])
      // Nothing before the first delay's lower bound.
      yield* TestClock.adjust("700 millis")
      expect((yield* Ref.get(starts)).length).toBe(1)
      yield* TestClock.adjust("30 seconds")
      const seen = gaps(yield* Ref.get(starts))
      expect(seen.length).toBeGreaterThanOrEqual(7)
      const nominal = [1_000, 2_000, 4_000, 5_000, 5_000, 5_000, 5_000]
      nominal.forEach((ms, i) => expectWithin(seen[i]!, ms))
      // After 5 failures the next delay is at the cap.
      expect(seen[4]!).toBeGreaterThanOrEqual(4_000)
      expect(seen[4]!).toBeLessThanOrEqual(5_000)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a DrainSignal makes the next attempt immediate (within the drain jitter) and resets the schedule", () =>
    Effect.gen(function*() {
      // attempts 0-3 fail with 1006, attempt 4 gets a drain, later ones fail with 1001
      const { fiber, starts } = yield* startLoop((n) =>
        n === 4 ? new DrainSignal({ source: "frame" }) : new Closed({ code: n < 4 ? 1006 : 1001 })
      )
      yield* TestClock.adjust("30 seconds")
      const seen = gaps(yield* Ref.get(starts))
      expect(seen.length).toBeGreaterThanOrEqual(8)
      // Before the drain: 1 s, 2 s, 4 s, 5 s.
      ;[1_000, 2_000, 4_000, 5_000].forEach((ms, i) => expectWithin(seen[i]!, ms))
      // Attempt 4 got the drain: the next one comes within the 250 ms drain jitter.
      expect(seen[4]!).toBeLessThanOrEqual(250)
      // The 1001 closes after the drain climb again from the base: 1 s, 2 s, 4 s.
      expectWithin(seen[5]!, 1_000)
      expectWithin(seen[6]!, 2_000)
      expectWithin(seen[7]!, 4_000)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a drain right away reconnects without climbing, every time", () =>
    Effect.gen(function*() {
      const { fiber, starts } = yield* startLoop(() => new DrainSignal({ source: "close" }))
      yield* TestClock.adjust("2500 millis")
      const seen = gaps(yield* Ref.get(starts))
      // 10 drains in 2.5 s at most 250 ms apart: the schedule never grew.
      expect(seen.length).toBeGreaterThanOrEqual(10)
      for (const gap of seen) expect(gap).toBeLessThanOrEqual(250)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("after a drain, refused connects retry every 250 ms (±20%) for the window; then the backoff climbs from the base", () =>
    Effect.gen(function*() {
      // attempt 0 drains; attempts 1-19 are refused (the relay restarting in place).
      const { fiber, starts } = yield* startLoop((n) => (n === 0 ? new DrainSignal({ source: "close" }) : new Refused()), 0, true)
      yield* TestClock.adjust("20 seconds")
      const all = yield* Ref.get(starts)
      const seen = gaps(all)
      const inWindow = all.filter((t) => t - all[1]! <= 3_000).length
      // ~3 s of 250 ms retries: about a dozen attempts, each gap within the flat cadence's jitter band.
      expect(inWindow).toBeGreaterThanOrEqual(10)
      for (const gap of seen.slice(1, inWindow - 1)) {
        expect(gap).toBeGreaterThanOrEqual(200)
        expect(gap).toBeLessThanOrEqual(300)
      }
      // After the window: the exponential schedule from its base.
      expectWithin(seen[inWindow]!, 1_000)
      expectWithin(seen[inWindow + 1]!, 2_000)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("after a drain, a tunnel that opened and then closed 1001 climbs from the base, with no fast cadence", () =>
    Effect.gen(function*() {
      const { fiber, starts } = yield* startLoop((n) => (n === 0 ? new DrainSignal({ source: "close" }) : new Closed({ code: 1001 })), 0, true)
      yield* TestClock.adjust("10 seconds")
      const seen = gaps(yield* Ref.get(starts))
      expect(seen[0]!).toBe(0)
      expectWithin(seen[1]!, 1_000)
      expectWithin(seen[2]!, 2_000)
      expectWithin(seen[3]!, 4_000)
      yield* Fiber.interrupt(fiber)
    }))
})

describe("reconnectLoopWithoutDrainReset (resetOnDrain: false, the behaviour before drains were handled)", () => {
  it.effect("a DrainSignal climbs the schedule like any failure, up to a 30 s cap, with no drain jitter or fast retry", () =>
    Effect.gen(function*() {
      const preFix: Backoff.BackoffOptions = { baseMs: 1_000, capMs: 30_000, jitter: 0.2 }
      const starts = yield* Ref.make<ReadonlyArray<number>>([])
      // Every attempt is drained; attempt 3 is refused instead (a relay restarting in place).
      const attempt = Effect.gen(function*() {
        const now = yield* TestClock.currentTimeMillis
        const n = (yield* Ref.getAndUpdate(starts, (all) => [...all, now])).length
        return yield* Effect.fail<Refused | DrainSignal>(n === 3 ? new Refused() : new DrainSignal({ source: "close" }))
      })
      const fiber = yield* Effect.fork(reconnectLoopWithoutDrainReset(attempt, Backoff.schedule(preFix)))
      yield* TestClock.adjust("200 seconds")
      const seen = gaps(yield* Ref.get(starts))
      const nominal = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
      expect(seen.length).toBeGreaterThanOrEqual(nominal.length)
      nominal.forEach((ms, i) => {
        expect(seen[i]!).toBeGreaterThanOrEqual(Math.floor(ms * (1 - preFix.jitter)))
        expect(seen[i]!).toBeLessThanOrEqual(ms)
      })
      yield* Fiber.interrupt(fiber)
    }))
})
