import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option, TestClock } from "effect"
import { chooseRelay } from "../src/index.js"
import * as Tunnels from "../src/Tunnels.js"

const [a, b, c] = ["ws://a", "ws://b", "ws://c"]
const first = () => 0
const last = (n: number) => n - 1

describe("chooseRelay", () => {
  it("each session starts on its own URL (i mod n)", () => {
    const urls = [a!, b!, c!]
    expect([0, 1, 2, 3].map((session) => chooseRelay({ urls, session, aimedByOthers: new Set() }, first))).toEqual([a, b, c, a])
  })

  it("never joins a URL another session aims at while a free one exists", () => {
    const urls = [a!, b!, c!]
    for (const random of [first, last]) {
      expect(chooseRelay({ urls, session: 0, aimedByOthers: new Set([a!]) }, random)).not.toBe(a)
      expect(chooseRelay({ urls, session: 1, aimedByOthers: new Set([a!, c!]) }, random)).toBe(b)
    }
  })

  it("after an attempt, prefers another free URL; with none, the same one rather than another session's", () => {
    // Three URLs, two sessions: session 0 leaves a (drained) for c, not b (held by session 1).
    expect(chooseRelay({ urls: [a!, b!, c!], session: 0, aimedByOthers: new Set([b!]), last: a }, first)).toBe(c)
    // Two URLs, two sessions: session 0 goes back to a (a relay restarting in place gets the fast retry).
    expect(chooseRelay({ urls: [a!, b!], session: 0, aimedByOthers: new Set([b!]), last: a }, first)).toBe(a)
    // One session, two URLs: the other one.
    expect(chooseRelay({ urls: [a!, b!], session: 0, aimedByOthers: new Set(), last: a }, first)).toBe(b)
  })

  it("more sessions than URLs: shares, preferring a URL other than its last", () => {
    expect(chooseRelay({ urls: [a!, b!], session: 2, aimedByOthers: new Set([a!, b!]), last: a }, first)).toBe(b)
    expect(chooseRelay({ urls: [a!], session: 1, aimedByOthers: new Set([a!]), last: a }, first)).toBe(a)
  })
})

describe("Tunnels (the sessions' shared view)", () => {
  it.effect("two sessions behind one URL: the second stands by until the relay behind it says hello", () =>
    Effect.gen(function*() {
      const tunnels = yield* Tunnels.make([a!], 2)
      expect(yield* tunnels.pick(0, 1, undefined, () => Effect.void)).toBe(a)
      const standby: Array<boolean | undefined> = []
      const second = yield* Effect.fork(tunnels.pick(1, 1, undefined, (_url, greets) => Effect.sync(() => void standby.push(greets))))
      yield* TestClock.adjust("1 second")
      expect(Option.isNone(yield* Fiber.poll(second))).toBe(true)
      expect(standby).toEqual([undefined])
      expect((yield* tunnels.sessions.get).map((s) => s._tag)).toEqual(["Connecting", "Standby"])
      // Session 0's relay greets: the URL leads to relays that know about several tunnels.
      expect(yield* tunnels.greeted(0, a!, { relayId: "iad:1" })).toBeUndefined()
      expect(yield* Fiber.join(second)).toBe(a)
      // The second lands on the same relay: told which session is there.
      expect(yield* tunnels.greeted(1, a!, { relayId: "iad:1" })).toBe(0)
      expect(yield* tunnels.greeted(1, a!, { relayId: "iad:2" })).toBeUndefined()
    }))

  it.effect("a relay that does not say hello keeps its URL to one tunnel; standby says it knows", () =>
    Effect.gen(function*() {
      const tunnels = yield* Tunnels.make([a!], 2)
      yield* tunnels.pick(0, 1, undefined, () => Effect.void)
      yield* tunnels.greeted(0, a!, undefined)
      yield* tunnels.connected(0, { since: 5 })
      const standby: Array<boolean | undefined> = []
      const second = yield* Effect.fork(tunnels.pick(1, 1, undefined, (_url, greets) => Effect.sync(() => void standby.push(greets))))
      // Session 0 ends and dials again on its backoff: its URL stays its own.
      yield* tunnels.down(0)
      yield* TestClock.adjust("1 minute")
      expect(Option.isNone(yield* Fiber.poll(second))).toBe(true)
      expect(standby).toEqual([false])
      expect(yield* tunnels.connectedCount).toBe(0)
      yield* Fiber.interrupt(second)
    }))

  it.effect("the summary: Connected since the first tunnel came up while any is; Connecting when none is", () =>
    Effect.gen(function*() {
      const tunnels = yield* Tunnels.make([a!, b!], 2)
      yield* tunnels.pick(0, 1, undefined, () => Effect.void)
      yield* tunnels.pick(1, 3, undefined, () => Effect.void)
      expect(yield* tunnels.state.get).toEqual(Tunnels.TunnelState.Connecting({ attempt: 3 }))
      yield* tunnels.connected(0, { since: 10, relayId: "iad:1", region: "iad" })
      yield* tunnels.connected(1, { since: 20 })
      expect(yield* tunnels.state.get).toEqual(Tunnels.TunnelState.Connected({ since: 10 }))
      expect(yield* tunnels.connectedCount).toBe(2)
      expect(yield* tunnels.relaysInUse).toEqual(["iad:1", "ws://b/"])
      yield* tunnels.down(0)
      expect(yield* tunnels.state.get).toEqual(Tunnels.TunnelState.Connected({ since: 10 }))
      yield* tunnels.down(1)
      expect(yield* tunnels.state.get).toEqual(Tunnels.TunnelState.Connecting({ attempt: 1 }))
      expect((yield* tunnels.sessions.get)[0]).toEqual(Tunnels.SessionState.Connecting({ session: 0, attempt: 1, relay: "ws://a/" }))
    }))
})
