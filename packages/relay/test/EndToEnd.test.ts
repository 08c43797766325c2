import { HostAgent, HostAgentLive } from "@effect-relay/host"
import { openSocket, startTarget, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import { eventually, get, startRelay } from "./support.js"

const hostId = "acme:laptop"

/** Relay + real host agent + local target, all on 127.0.0.1 with free ports. */
const setup = Effect.gen(function*() {
  const relay = yield* startRelay()
  const target = yield* startTarget
  const t = yield* token({ org: "acme" })
  const context = yield* Layer.build(HostAgentLive({ relayUrl: relay.ws, hostId, token: t, targetUrl: target.url }))
  yield* Context.get(context, HostAgent).awaitConnected
  yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
  return { relay, target, token: t, base: `${relay.http}/hosts/${hostId}` }
})

describe("end to end: client -> relay -> host agent -> local target", () => {
  it.scopedLive("GET with path, query and headers both ways", () =>
    Effect.gen(function*() {
      const { base, token: t } = yield* setup
      const res = yield* get(`${base}/echo/a/b?x=1&y=two`, t, { headers: { "x-client": "hello" } })
      expect(res.status).toBe(200)
      const body = yield* Effect.promise(() => res.json())
      expect(body.method).toBe("GET")
      expect(body.url).toBe("/echo/a/b?x=1&y=two")
      expect(body.headers["x-client"]).toBe("hello")
      expect(body.headers["authorization"]).toBeUndefined()
      expect(body.headers["x-forwarded-for"]).toBe("127.0.0.1")
      const echoed = yield* get(`${base}/headers`, t, { headers: { "x-echo-one": "1" } })
      expect(echoed.headers.get("x-echo-one")).toBe("1")
      const cookies = yield* get(`${base}/cookies`, t)
      expect(cookies.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/"])
    }))

  it.scopedLive("POST with a 1 MiB binary body comes back byte for byte", () =>
    Effect.gen(function*() {
      const { base, token: t } = yield* setup
      const payload = randomBytes(1024 * 1024)
      const res = yield* get(`${base}/echo-bytes`, t, { method: "POST", body: payload })
      expect(res.status).toBe(200)
      const back = Buffer.from(yield* Effect.promise(() => res.arrayBuffer()))
      expect(back.length).toBe(payload.length)
      expect(back.equals(payload)).toBe(true)
    }))

  it.scopedLive("the target's 404 and 500 pass through", () =>
    Effect.gen(function*() {
      const { base, token: t } = yield* setup
      for (const code of [404, 500, 201]) {
        const res = yield* get(`${base}/status/${code}`, t)
        expect(res.status).toBe(code)
        expect(yield* Effect.promise(() => res.text())).toBe(`status ${code}`)
      }
    }))

  it.scopedLive("a WebSocket through /hosts/:hostId/... echoes text and binary frames, and close codes are carried", () =>
    Effect.gen(function*() {
      const { relay, token: t } = yield* setup
      const socket = yield* openSocket(`${relay.ws}/hosts/${hostId}/ws/echo?room=1`, { authorization: `Bearer ${t}` })
      socket.ws.send("hello")
      const binary = randomBytes(3000)
      socket.ws.send(binary)
      yield* Effect.promise(() => socket.waitFrames(2))
      expect(socket.frames[0]).toEqual({ data: "hello", binary: false })
      expect(socket.frames[1]!.binary).toBe(true)
      expect(Buffer.compare(socket.frames[1]!.data as Buffer, binary)).toBe(0)
      socket.ws.send("close:4321")
      expect((yield* Effect.promise(() => socket.closed)).code).toBe(4321)
    }))

  it.scopedLive("a client WebSocket without a token is refused 401 before the upgrade", () =>
    Effect.gen(function*() {
      const { relay } = yield* setup
      const refused = yield* Effect.either(openSocket(`${relay.ws}/hosts/${hostId}/ws`))
      expect(refused._tag === "Left" && refused.left).toEqual({ status: 401 })
    }))
})
