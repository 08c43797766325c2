import { CloseCodes, HostToRelayCodec, HttpResponse, Pong, RelayToHostCodec, Transport, type HostId } from "@effect-relay/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Fiber, Option, Scope, Stream, TestClock } from "effect"
import * as Tunnel from "../src/tunnel/Tunnel.js"
import { testConfig } from "./support.js"

const hostId = "acme:laptop" as HostId

/** A tunnel over an in-memory pair; the test plays the host on the other end. */
const setup = (overrides = {}) =>
  Effect.gen(function*() {
    const [relaySide, hostSide] = yield* Transport.memoryPair
    const scope = yield* Scope.make()
    const tunnel = yield* Tunnel.make(hostId, relaySide).pipe(Scope.extend(scope), Effect.provide(testConfig(overrides)))
    const frames: Array<string> = []
    yield* hostSide.messages.pipe(
      Stream.runForEach((f) => Effect.sync(() => frames.push(f as string))),
      Effect.fork
    )
    const decoded = () => frames.map((f) => Either.getOrThrow(RelayToHostCodec.decode(f)))
    return { tunnel, hostSide, relaySide, scope, frames, decoded }
  })

/** Lets forked fibers run until `check` holds (no clock involved). */
const settle = (check: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000 && !check(); i++) yield* Effect.yieldNow()
    expect(check()).toBe(true)
  })

const request = { method: "GET", path: "/x", headers: {}, body: new Uint8Array() }

describe("Tunnel", () => {
  it.effect("sends a ping every interval and closes 1001 after 3 missed pongs", () =>
    Effect.gen(function*() {
      const { decoded, hostSide, tunnel } = yield* setup()
      yield* TestClock.adjust("30 seconds")
      expect(decoded().filter((m) => m._tag === "ping")).toHaveLength(1)
      yield* TestClock.adjust("60 seconds")
      expect(decoded().filter((m) => m._tag === "ping")).toHaveLength(3)
      expect(Option.isNone(yield* hostSide.closeInfo)).toBe(true)
      yield* TestClock.adjust("30 seconds")
      const end = yield* tunnel.ended
      expect(end.code).toBe(CloseCodes.PingTimeout)
    }))

  it.effect("a pong resets the missed count", () =>
    Effect.gen(function*() {
      const { hostSide, tunnel } = yield* setup()
      for (let i = 0; i < 6; i++) {
        yield* TestClock.adjust("30 seconds")
        yield* hostSide.send(HostToRelayCodec.encode(Pong.make({ ts: 1 })))
      }
      yield* Effect.yieldNow()
      expect(Option.isNone(yield* Effect.timeoutOption(tunnel.ended, 0))).toBe(true)
    }))

  it.effect("a request the host never answers fails with RequestTimeout after 30 s", () =>
    Effect.gen(function*() {
      const { tunnel } = yield* setup({ pingIntervalMs: 1_000_000 })
      const fiber = yield* Effect.fork(tunnel.request(request))
      yield* TestClock.adjust("29 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("RequestTimeout")
      expect(tunnel.pendingCount()).toBe(0)
    }))

  it.effect("the request over the pending cap fails with TooManyPendingRequests", () =>
    Effect.gen(function*() {
      const { tunnel } = yield* setup({ maxPendingPerTunnel: 3 })
      for (let i = 0; i < 3; i++) yield* Effect.fork(tunnel.request(request))
      yield* settle(() => tunnel.pendingCount() === 3)
      const error = yield* Effect.flip(tunnel.request(request))
      expect(error._tag).toBe("TooManyPendingRequests")
    }))

  it.effect("answers a request with the host's response, binary body intact", () =>
    Effect.gen(function*() {
      const { decoded, hostSide, tunnel } = yield* setup()
      const fiber = yield* Effect.fork(tunnel.request({ ...request, method: "POST", body: new Uint8Array([0xff, 0, 1]) }))
      yield* settle(() => decoded().some((m) => m._tag === "http"))
      const sent = decoded().find((m) => m._tag === "http")!
      expect(sent._tag === "http" && sent.bodyEncoding).toBe("base64")
      yield* hostSide.send(
        HostToRelayCodec.encode(HttpResponse.make({ id: (sent as { id: string }).id, status: 201, headers: { a: "b" }, body: "/wA=", bodyEncoding: "base64" }))
      )
      const response = yield* Fiber.join(fiber)
      expect(response.status).toBe(201)
      expect([...response.body]).toEqual([0xff, 0])
    }))

  it.effect("malformed frames are logged and ignored; the tunnel keeps serving", () =>
    Effect.gen(function*() {
      const { decoded, hostSide, tunnel } = yield* setup()
      const fiber = yield* Effect.fork(tunnel.request(request))
      yield* settle(() => decoded().some((m) => m._tag === "http"))
      for (
        const bad of [
          "not json",
          "[1,2]",
          JSON.stringify({ type: "nope" }),
          JSON.stringify({ type: "http:response", id: "999", status: 200, headers: {} }),
          JSON.stringify({ type: "http:response", id: "999", status: "200", headers: {} }),
          JSON.stringify({ id: "1" })
        ]
      ) yield* hostSide.send(bad)
      yield* hostSide.send(new Uint8Array([1, 2, 3]))
      yield* Effect.yieldNow()
      expect(fiber.unsafePoll()).toBeNull()
      const id = (decoded().find((m) => m._tag === "http") as { id: string }).id
      yield* hostSide.send(HostToRelayCodec.encode(HttpResponse.make({ id, status: 200, headers: {} })))
      expect((yield* Fiber.join(fiber)).status).toBe(200)
    }))

  it.effect("a response frame that does not decode fails its request at once (502), not after the request timeout", () =>
    Effect.gen(function*() {
      const { decoded, hostSide, tunnel } = yield* setup()
      const fiber = yield* Effect.fork(tunnel.request(request))
      yield* settle(() => decoded().some((m) => m._tag === "http"))
      const id = (decoded().find((m) => m._tag === "http") as { id: string }).id
      yield* hostSide.send(JSON.stringify({ type: "http:response", id, status: 1000, headers: {} }))
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("BadResponseFromHost")
      expect(tunnel.pendingCount()).toBe(0)
    }))

  it.effect("a response head over MAX_RESPONSE_HEADER_BYTES fails its request (502)", () =>
    Effect.gen(function*() {
      const { decoded, hostSide, tunnel } = yield* setup({ maxResponseHeaderBytes: 1024 })
      const fiber = yield* Effect.fork(tunnel.request(request))
      yield* settle(() => decoded().some((m) => m._tag === "http"))
      const id = (decoded().find((m) => m._tag === "http") as { id: string }).id
      yield* hostSide.send(HostToRelayCodec.encode(HttpResponse.make({ id, status: 200, headers: { "x-big": "a".repeat(2000) } })))
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("BadResponseFromHost")
    }))

  it.effect("closing the scope fails pending requests with TunnelClosed and drains the host (drain frame, 4001)", () =>
    Effect.gen(function*() {
      const { decoded, hostSide, scope, tunnel } = yield* setup()
      const fiber = yield* Effect.fork(tunnel.request(request))
      yield* settle(() => tunnel.pendingCount() === 1)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle(() => decoded().at(-1)?._tag === "drain")
      expect(fiber.unsafePoll()).toBeNull() // in-flight requests get the flush window
      yield* TestClock.adjust("5 seconds") // DRAIN_FLUSH_MS
      yield* Fiber.join(closing)
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("TunnelClosed")
      expect(decoded().at(-1)?._tag).toBe("drain")
      expect((yield* hostSide.closed).code).toBe(CloseCodes.Drain)
    }))

  it.effect("closeWith decides the close code (replacement closes 1000)", () =>
    Effect.gen(function*() {
      const { hostSide, scope, tunnel } = yield* setup()
      yield* tunnel.closeWith(CloseCodes.Normal, "Replaced by new tunnel")
      yield* Scope.close(scope, Exit.void)
      expect(yield* hostSide.closed).toEqual({ code: 1000, reason: "Replaced by new tunnel" })
    }))
})
