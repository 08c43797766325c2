import { startTarget, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { earnedPerSent, makeFrameBudget } from "../src/tunnel/FrameBudget.js"
import { agent, served } from "./processSupport.js"
import { startRelay } from "./support.js"

/** Enough of a transport for the budget: counts its pauses and resumes. */
const fakeConn = () => {
  const calls = { pause: 0, resume: 0 }
  const conn = { pause: () => void calls.pause++, resume: () => void calls.resume++ } as never
  return { conn, calls }
}

describe("FrameBudget", () => {
  it("frames nobody asked for meet the bucket: over the burst the socket is paused, and overSince grows", () => {
    let now = 1_000
    const { conn, calls } = fakeConn()
    const budget = makeFrameBudget(10, 20, conn, () => now)
    for (let i = 0; i < 20; i++) expect(budget.take()).toBe("ok")
    expect(budget.take()).toBe("paused")
    expect(budget.take()).toBe("over")
    expect(calls.pause).toBe(1)
    now += 500
    expect(budget.overSinceMs()).toBe(500)
    budget.stop()
  })

  it("every frame the relay sends earns the host its answer: answers beyond the burst are never paused", () => {
    let now = 1_000
    const { conn, calls } = fakeConn()
    const budget = makeFrameBudget(10, 20, conn, () => now)
    // 1,000 requests, each answered with a head, a body piece and an end, in the same millisecond.
    for (let i = 0; i < 1_000; i++) {
      budget.earn()
      for (let f = 0; f < 3; f++) expect(budget.take()).toBe("ok")
    }
    expect(calls.pause).toBe(0)
    expect(budget.overSinceMs()).toBe(0)
    budget.stop()
  })

  it("what is earned is capped, and spent before the bucket", () => {
    const now = 1_000
    const { conn, calls } = fakeConn()
    const budget = makeFrameBudget(10, 20, conn, () => now, 40)
    for (let i = 0; i < 100; i++) budget.earn()
    // The cap (40 earned) and then the bucket (20): the 61st frame is over.
    for (let i = 0; i < 60; i++) expect(budget.take()).toBe("ok")
    expect(budget.take()).toBe("paused")
    expect(calls.pause).toBe(1)
    expect(earnedPerSent).toBeGreaterThanOrEqual(3)
    budget.stop()
  })

  it("a host that went over and then only answers what it is asked is no longer over once the bucket is half back", () => {
    let now = 1_000
    const { conn } = fakeConn()
    const budget = makeFrameBudget(10, 20, conn, () => now)
    for (let i = 0; i < 21; i++) budget.take()
    expect(budget.overSinceMs()).toBe(0)
    now += 100
    expect(budget.overSinceMs()).toBe(100)
    now += 3_000 // the bucket is full again
    budget.earn()
    expect(budget.take()).toBe("ok")
    expect(budget.overSinceMs()).toBe(0)
    budget.stop()
  })
})

describe("a busy version 2 tunnel under a small frame budget", () => {
  it.scopedLive("answers to the relay's own requests do not count against TUNNEL_FRAMES_PER_SECOND: 600 requests (three frames of answer each) with a budget of 50 a second, none paused", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay({ tunnelFramesPerSecond: 50, tunnelFrameBurst: 100 })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* agent(relay, "acme:busy", target.url, t)
      yield* served(relay.http, "acme:busy", t)
      const hits = () =>
        Effect.promise(() => fetch(`${relay.http}/metrics`).then((r) => r.text())).pipe(
          Effect.map((text) => Number(/relay_limit_hits_total\{limit="tunnel_frame_rate"\} (\d+)/.exec(text)?.[1] ?? 0))
        )
      const before = yield* hits()
      const started = Date.now()
      const statuses = yield* Effect.forEach(
        Array.from({ length: 600 }, (_, i) => i),
        (i) => Effect.promise(() => fetch(`${relay.http}/hosts/acme:busy/echo?i=${i}`, { headers: { authorization: `Bearer ${t}` } }).then((r) => r.status)),
        { concurrency: 16 }
      )
      const ms = Date.now() - started
      expect(statuses.every((s) => s === 200)).toBe(true)
      expect(yield* hits()).toBe(before)
      // 1,800 frames of answer against a bucket of 100 and 50 a second: paced by the bucket, this
      // would take over 30 s.
      expect(ms).toBeLessThan(15_000)
    }), 30_000)
})
