import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope, TestClock } from "effect"
import { Deadlines } from "../src/index.js"

describe("Deadlines", () => {
  it.effect("each entry expires once its time has passed, in order, and not before", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(1_000)
      const expired: Array<string> = []
      deadlines.add(() => expired.push("a"))
      yield* TestClock.adjust("400 millis")
      deadlines.add(() => expired.push("b"))
      yield* TestClock.adjust("599 millis")
      expect(expired).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(expired).toEqual(["a"])
      yield* TestClock.adjust("399 millis")
      expect(expired).toEqual(["a"])
      yield* TestClock.adjust("1 millis")
      expect(expired).toEqual(["a", "b"])
      expect(deadlines.size()).toBe(0)
    }).pipe(Effect.scoped))

  it.effect("a cancelled entry never expires; the next one still does", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(1_000)
      const expired: Array<string> = []
      const cancelA = deadlines.add(() => expired.push("a"))
      yield* TestClock.adjust("100 millis")
      deadlines.add(() => expired.push("b"))
      cancelA()
      yield* TestClock.adjust("1 second")
      expect(expired).toEqual(["b"])
    }).pipe(Effect.scoped))

  it.effect("after going idle it wakes again for new entries", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(500)
      const expired: Array<number> = []
      deadlines.add(() => expired.push(1))
      yield* TestClock.adjust("500 millis")
      expect(expired).toEqual([1])
      yield* TestClock.adjust("10 seconds")
      deadlines.add(() => expired.push(2))
      yield* TestClock.adjust("499 millis")
      expect(expired).toEqual([1])
      yield* TestClock.adjust("1 millis")
      expect(expired).toEqual([1, 2])
    }).pipe(Effect.scoped))

  it.effect("closing its scope drops every entry without calling it; later adds do nothing", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const deadlines = yield* Deadlines.make(1_000).pipe(Scope.extend(scope))
      const expired: Array<string> = []
      deadlines.add(() => expired.push("a"))
      yield* Scope.close(scope, Exit.void)
      deadlines.add(() => expired.push("b"))
      yield* TestClock.adjust("5 seconds")
      expect(expired).toEqual([])
      expect(deadlines.size()).toBe(0)
    }))

  it.effect("a callback that throws does not stop the others", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(100)
      const expired: Array<string> = []
      deadlines.add(() => {
        throw new Error("boom")
      })
      deadlines.add(() => expired.push("after"))
      yield* TestClock.adjust("100 millis")
      expect(expired).toEqual(["after"])
    }).pipe(Effect.scoped))
})
