import { fakeHost, okResponse, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { eventually, get, startRelay } from "./support.js"

/**
 * The configured maximum token lifetime reaches the running relay: a host whose token is over
 * it is refused (401, before any upgrade), a client gets 401 with the reason; both without exp likewise.
 */
describe("token lifetime limits on a running relay", () => {
  it.scopedLive("with a 1-hour maximum: a 2-hour token and a token without exp are refused to hosts and clients, a 1-hour one passes", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay({ maxTokenLifetimeSeconds: 3600 })
      const hourLong = yield* token({ org: "acme", issuedAgo: 0, expiresIn: 3600 })
      const twoHours = yield* token({ org: "acme", issuedAgo: 0, expiresIn: 7200 })
      const noExp = yield* token({ org: "acme", expiresIn: null })

      for (const t of [twoHours, noExp]) {
        expect(yield* Effect.flip(fakeHost(relay.ws, "acme:refused", t))).toEqual({ status: 401 })
      }
      expect(relay.registry.size()).toBe(0)

      yield* fakeHost(relay.ws, "acme:laptop", hourLong, (req) => okResponse(req.id, "ok"))
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get("acme:laptop" as never)), Option.isSome))
      const url = `${relay.http}/hosts/acme:laptop/x`
      expect((yield* get(url, hourLong)).status).toBe(200)
      for (const [t, message] of [[twoHours, "token lifetime over the 1 hour maximum"], [noExp, "token has no expiry (exp)"]] as const) {
        const res = yield* get(url, t)
        expect(res.status).toBe(401)
        expect(yield* Effect.promise(() => res.json())).toEqual({ error: "unauthorized", message })
      }
    }))
})
