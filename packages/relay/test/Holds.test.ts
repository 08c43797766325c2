/** Requests held for a host between its tunnels: released by its registration, or answered after HOLD_MS. */
import type { HostId } from "@effect-relay/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Logger, PubSub, Stream, TestClock } from "effect"
import * as Metric from "effect/Metric"
import type { Registration } from "../src/directory/Directory.js"
import * as Holds from "../src/routing/Holds.js"

const registration = (hostId: string): Registration => ({ hostId: hostId as HostId, owner: "iad:a", tunnelId: "t", instanceId: "i" })

const setup = (options: { readonly holdMs?: number; readonly maxHeld?: number } = {}) =>
  Effect.gen(function*() {
    const events = yield* PubSub.unbounded<Registration>()
    const holds = yield* Holds.make({ holdMs: options.holdMs ?? 10_000, maxHeld: options.maxHeld ?? 10_000 }, Stream.fromPubSub(events))
    yield* Effect.yieldNow() // the reader is subscribed
    return { holds, events }
  })

/** relay_limit_hits_total{limit="max_held"} now. */
const maxHeldHits = Metric.snapshot.pipe(
  Effect.map((pairs) => {
    const pair = pairs.find((p) => p.metricKey.name === "relay_limit_hits_total" && p.metricKey.tags.some((t) => t.key === "limit" && t.value === "max_held"))
    return pair === undefined ? 0 : Number((pair.metricState as unknown as { count: number | bigint }).count)
  })
)

describe("holds", () => {
  it.scoped("a held request is released by its host's registration, not by another host's", () =>
    Effect.gen(function*() {
      const { events, holds } = yield* setup()
      const held = yield* Effect.fork(holds.wait("acme:a" as HostId))
      yield* TestClock.adjust("1 second")
      expect(holds.size()).toBe(1)
      yield* PubSub.publish(events, registration("acme:other"))
      yield* TestClock.adjust("1 second")
      expect(held.unsafePoll()).toBeNull()
      yield* PubSub.publish(events, registration("acme:a"))
      expect(yield* Fiber.join(held)).toBe("released_by_event")
      expect(holds.size()).toBe(0)
    }))

  it.scoped("a hold that no registration ends times out after HOLD_MS", () =>
    Effect.gen(function*() {
      const { holds } = yield* setup({ holdMs: 10_000 })
      const held = yield* Effect.fork(holds.wait("acme:a" as HostId))
      yield* TestClock.adjust("9999 millis")
      expect(held.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(held)).toBe("timed_out")
      expect(holds.size()).toBe(0)
    }))

  it.scoped("over MAX_HELD a request is refused at once; a hold that ends makes room", () =>
    Effect.gen(function*() {
      const { events, holds } = yield* setup({ maxHeld: 2 })
      const first = yield* Effect.fork(holds.wait("acme:a" as HostId))
      yield* Effect.fork(holds.wait("acme:b" as HostId))
      yield* TestClock.adjust("1 millis")
      const hitsBefore = yield* maxHeldHits
      const lines: Array<string> = []
      const logger = Logger.make(({ message }) => lines.push(String(message)))
      // Twenty refusals: each one counted, five lines logged (the gate's allowance in 10 s).
      for (let i = 0; i < 20; i++) {
        expect(yield* holds.wait("acme:c" as HostId).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))).toBe("refused")
      }
      expect((yield* maxHeldHits) - hitsBefore).toBe(20)
      expect(lines.filter((l) => l.includes("hold.refused"))).toHaveLength(5)
      yield* PubSub.publish(events, registration("acme:a"))
      expect(yield* Fiber.join(first)).toBe("released_by_event")
      const again = yield* Effect.fork(holds.wait("acme:c" as HostId))
      yield* TestClock.adjust("1 millis")
      expect(again.unsafePoll()).toBeNull()
    }))

  it.scoped("a held request whose client goes away leaves nothing behind", () =>
    Effect.gen(function*() {
      const { holds } = yield* setup()
      const held = yield* Effect.fork(holds.wait("acme:a" as HostId))
      yield* TestClock.adjust("1 millis")
      yield* Fiber.interrupt(held)
      expect(holds.size()).toBe(0)
    }))

  it.scoped("endAll (a drain) ends every hold with drained at once, and a later hold too", () =>
    Effect.gen(function*() {
      const { events, holds } = yield* setup({ holdMs: 10_000 })
      const a = yield* Effect.fork(holds.wait("acme:a" as HostId))
      const b = yield* Effect.fork(holds.wait("acme:b" as HostId))
      yield* TestClock.adjust("1 second")
      expect(yield* holds.endAll).toBe(2)
      expect(yield* Fiber.join(a)).toBe("drained")
      expect(yield* Fiber.join(b)).toBe("drained")
      expect(holds.size()).toBe(0)
      // No hold begins any more: not even for a host that registers right after.
      const late = yield* Effect.fork(holds.wait("acme:a" as HostId))
      yield* PubSub.publish(events, registration("acme:a"))
      expect(yield* Fiber.join(late)).toBe("drained")
      expect(yield* holds.endAll).toBe(0)
    }))
})
