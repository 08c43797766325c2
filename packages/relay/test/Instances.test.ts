/**
 * Tunnels of one agent instance on one relay: a session's new tunnel replaces its previous one,
 * another session's tunnel belongs on another relay (4003), and an agent that asks is told which
 * relay it reached (hello).
 */
import { CloseCodes, CloseReasons, Features, FeaturesHeader, InstanceHeader, SessionHeader } from "@effect-relay/protocol"
import { fakeHost, okResponse, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { eventually, get, startRelay } from "./support.js"

const hostId = "acme:twin"
const agentHeaders = (instance: string, session: number, features = "") => ({
  [InstanceHeader]: instance,
  [SessionHeader]: String(session),
  ...(features === "" ? {} : { [FeaturesHeader]: features })
})

describe("an agent instance's tunnels on one relay", () => {
  it.scopedLive("another session of the same instance is closed 4003 (held here); the first keeps serving", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* fakeHost(relay.ws, hostId, t, (req) => okResponse(req.id, "first"), agentHeaders("i1", 0))
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      const second = yield* fakeHost(relay.ws, hostId, t, (req) => okResponse(req.id, "second"), agentHeaders("i1", 1))
      expect(yield* Effect.promise(() => second.closed)).toEqual({ code: CloseCodes.HeldHere, reason: CloseReasons.HeldHere })
      const res = yield* get(`${relay.http}/hosts/${hostId}/x`, t)
      expect(yield* Effect.promise(() => res.text())).toBe("first")
    }))

  it.scopedLive("the same session's new tunnel replaces its previous one (1000); a new instance does too", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      const first = yield* fakeHost(relay.ws, hostId, t, (req) => okResponse(req.id, "first"), agentHeaders("i1", 0))
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      const again = yield* fakeHost(relay.ws, hostId, t, (req) => okResponse(req.id, "again"), agentHeaders("i1", 0))
      expect(yield* Effect.promise(() => first.closed)).toEqual({ code: CloseCodes.Normal, reason: CloseReasons.Replaced })
      yield* fakeHost(relay.ws, hostId, t, (req) => okResponse(req.id, "new"), agentHeaders("i2", 1))
      expect(yield* Effect.promise(() => again.closed)).toEqual({ code: CloseCodes.Normal, reason: CloseReasons.Replaced })
      const res = yield* get(`${relay.http}/hosts/${hostId}/x`, t)
      expect(yield* Effect.promise(() => res.text())).toBe("new")
    }))

  it.scopedLive("an agent that announces hello gets it first: this relay's id and region, and its tunnel's id", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      const host = yield* fakeHost(relay.ws, hostId, t, undefined, agentHeaders("i1", 0, Features.hello))
      yield* Effect.promise(() => host.waitFrames(1))
      const tunnel = yield* eventually(Effect.sync(() => Option.getOrThrow(relay.registry.get(hostId as never))))
      expect(host.messages()[0]).toEqual({ _tag: "hello", relayId: "test:m1", region: "test", tunnelId: tunnel.tunnelId })
      // An agent that does not announce it never sees one.
      const quiet = yield* fakeHost(relay.ws, "acme:quiet", t, undefined, agentHeaders("i9", 0))
      yield* Effect.sleep("100 millis")
      expect(quiet.messages().filter((m) => m._tag === "hello")).toEqual([])
    }))
})
