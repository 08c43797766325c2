import {
  CloseCodes,
  DrainSignal,
  Hello,
  type HostToRelay,
  HostToRelayCodec,
  HttpRequest,
  HttpResponse,
  Ping,
  RelayToHostCodec,
  type RelayToHost,
  retryAfterReason,
  Transport
} from "@effect-relay/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Exit, Fiber, Layer, Option, Queue, Stream, TestClock } from "effect"
import { Drained, HeldHere, RelayBusy, SessionClosed, WatchdogTimeout } from "../src/Errors.js"
import * as Session from "../src/Session.js"
import { TargetHttp } from "../src/TargetHttp.js"

/** A target that answers `GET /slow` after 10 s and everything else at once, echoing the path. */
const FakeTarget = Layer.succeed(TargetHttp, {
  forward: (request) =>
    Effect.as(
      request.path === "/slow" ? Effect.sleep("10 seconds") : Effect.void,
      HttpResponse.make({ id: request.id, status: 200, headers: { "x-path": request.path }, body: request.path })
    ),
  // These sessions speak version 1 (memory transports agree on no protocol).
  open: () => {
    throw new Error("version 1 sessions do not stream")
  }
})

const options: Session.SessionOptions = {
  watchdogMs: 75_000,
  drainGraceMs: 2_000,
  channels: { targetUrl: "http://127.0.0.1:1", connectTimeoutMs: 1_000, queueFrames: 4 }
}

/** Starts a session on one end of an in-memory pair; the test plays the relay on the other. */
const startWith = (sessionOptions: Session.SessionOptions) => Effect.gen(function*() {
  const [relay, host] = yield* Transport.memoryPair
  const session = yield* Effect.fork(Session.run(host, sessionOptions).pipe(Effect.provide(FakeTarget)))
  const received = yield* Queue.unbounded<string | Uint8Array>()
  yield* Effect.fork(Stream.runForEach(relay.messages, (frame) => Queue.offer(received, frame)))
  const send = (message: RelayToHost) => relay.send(RelayToHostCodec.encode(message))
  const next: Effect.Effect<HostToRelay> = Queue.take(received).pipe(
    Effect.map((frame) => {
      expect(typeof frame).toBe("string")
      const decoded = HostToRelayCodec.decode(frame as string)
      if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
      return decoded.right
    })
  )
  return { relay, session, send, next, received }
})
const start = startWith(options)

const failureOf = <E>(exit: Exit.Exit<unknown, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("the session succeeded")
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (failure === undefined) throw new Error(`the session did not fail with an error: ${exit.cause._tag}`)
  return failure
}

describe("Session", () => {
  it.effect("answers ping with pong carrying the same ts", () =>
    Effect.gen(function*() {
      const { next, send, session } = yield* start
      yield* send(Ping.make({ ts: 12345 }))
      const pong = yield* next
      expect(pong._tag).toBe("pong")
      expect(pong).toMatchObject({ ts: 12345 })
      yield* Fiber.interrupt(session)
    }))

  it.effect("watchdog: closes with 4002 after 75 s without any frame, and not before", () =>
    Effect.gen(function*() {
      const { relay, session } = yield* start
      yield* TestClock.adjust("74999 millis")
      expect(Option.isNone(yield* relay.closeInfo)).toBe(true)
      expect(Option.isNone(yield* Fiber.poll(session))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const ended = failureOf(yield* Fiber.await(session))
      expect(ended).toBeInstanceOf(WatchdogTimeout)
      expect((yield* relay.closed).code).toBe(CloseCodes.HostWatchdog)
    }))

  it.effect("watchdog: any frame restarts the silence window", () =>
    Effect.gen(function*() {
      const { relay, send, next, session } = yield* start
      yield* TestClock.adjust("60 seconds")
      yield* send(Ping.make({ ts: 1 }))
      yield* next
      // 120 s since the session started but only 60 s since the last frame.
      yield* TestClock.adjust("60 seconds")
      expect(Option.isNone(yield* relay.closeInfo)).toBe(true)
      yield* TestClock.adjust("15 seconds")
      expect(failureOf(yield* Fiber.await(session))).toBeInstanceOf(WatchdogTimeout)
      expect((yield* relay.closed).code).toBe(CloseCodes.HostWatchdog)
    }))

  it.effect("frames that do not decode are ignored and the session keeps answering pings", () =>
    Effect.gen(function*() {
      const { relay, send, next, session } = yield* start
      for (
        const bad of [
          "not json",
          "[1,2]",
          "null",
          JSON.stringify({ no: "type" }),
          JSON.stringify({ type: "teleport" }),
          JSON.stringify({ type: "ping" }),
          JSON.stringify({ type: "ping", ts: "soon" }),
          JSON.stringify({ type: "http", id: "", method: "GET", path: "/", headers: {} }),
          JSON.stringify({ type: "ws:frame", id: "x", data: 3 })
        ]
      ) {
        yield* relay.send(bad)
      }
      yield* relay.send(new Uint8Array([1, 2, 3]))
      yield* send(Ping.make({ ts: 7 }))
      expect(yield* next).toMatchObject({ _tag: "pong", ts: 7 })
      expect(Option.isNone(yield* Fiber.poll(session))).toBe(true)
      yield* Fiber.interrupt(session)
    }))

  it.effect("unknown channel ids are ignored", () =>
    Effect.gen(function*() {
      const { relay, send, next, session } = yield* start
      yield* relay.send(JSON.stringify({ type: "ws:frame", id: "nope", data: "hi" }))
      yield* relay.send(JSON.stringify({ type: "ws:close", id: "nope", code: 1000 }))
      yield* send(Ping.make({ ts: 8 }))
      expect(yield* next).toMatchObject({ _tag: "pong", ts: 8 })
      yield* Fiber.interrupt(session)
    }))

  it.effect("after a drain frame, in-flight requests still answer; the relay's 4001 close ends the session with a DrainSignal", () =>
    Effect.gen(function*() {
      const { next, relay, send, session } = yield* startWith({ ...options, drainGraceMs: 20_000 })
      yield* send(HttpRequest.make({ id: "r1", method: "GET", path: "/slow", headers: {} }))
      yield* relay.send(JSON.stringify({ type: "drain", reason: "deploy" }))
      yield* TestClock.adjust("1 second")
      expect(session.unsafePoll()).toBeNull() // still open, still serving
      yield* send(Ping.make({ ts: 9 }))
      expect(yield* next).toMatchObject({ _tag: "pong", ts: 9 })
      yield* TestClock.adjust("9 seconds")
      expect(yield* next).toMatchObject({ _tag: "http:response", id: "r1", status: 200 })
      yield* relay.close(CloseCodes.Drain, "draining")
      const ended = failureOf(yield* Fiber.await(session))
      expect(ended).toBeInstanceOf(DrainSignal)
      expect(ended).toMatchObject({ source: "frame", reason: "deploy" })
    }))

  it.effect("after a drain frame, a relay that does not close within the grace is closed 1000 by the host", () =>
    Effect.gen(function*() {
      const { relay, session } = yield* start
      yield* relay.send(JSON.stringify({ type: "drain" }))
      yield* TestClock.adjust("1999 millis")
      expect(session.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const ended = failureOf(yield* Fiber.await(session))
      expect(ended).toBeInstanceOf(DrainSignal)
      expect((yield* relay.closed).code).toBe(CloseCodes.Normal)
    }))

  it.effect("a close with 4001 ends the session with a DrainSignal", () =>
    Effect.gen(function*() {
      const { relay, session } = yield* start
      yield* relay.close(CloseCodes.Drain, "draining")
      const ended = failureOf(yield* Fiber.await(session))
      expect(ended).toBeInstanceOf(DrainSignal)
      expect(ended).toMatchObject({ source: "close" })
    }))

  it.effect("a close with 1001 ends the session with SessionClosed, not a DrainSignal", () =>
    Effect.gen(function*() {
      const { relay, session } = yield* start
      yield* relay.close(CloseCodes.PingTimeout, "Ping timeout")
      const ended = failureOf(yield* Fiber.await(session))
      expect(ended).not.toBeInstanceOf(DrainSignal)
      expect(ended).toBeInstanceOf(SessionClosed)
      expect(ended).toMatchObject({ code: 1001, reason: "Ping timeout" })
    }))

  it.effect("requests run concurrently: a slow one does not hold up a fast one", () =>
    Effect.gen(function*() {
      const { send, next, session } = yield* start
      yield* send(HttpRequest.make({ id: "slow", method: "GET", path: "/slow", headers: {} }))
      yield* send(HttpRequest.make({ id: "fast", method: "GET", path: "/fast", headers: {} }))
      expect(yield* next).toMatchObject({ _tag: "http:response", id: "fast", status: 200, body: "/fast" })
      // A ping is answered while the slow request is still running.
      yield* send(Ping.make({ ts: 9 }))
      expect(yield* next).toMatchObject({ _tag: "pong", ts: 9 })
      yield* TestClock.adjust("10 seconds")
      expect(yield* next).toMatchObject({ _tag: "http:response", id: "slow", status: 200 })
      yield* Fiber.interrupt(session)
    }))
  it.effect("a drain frame's reconnectWithinMs travels with the DrainSignal the session ends with", () =>
    Effect.gen(function*() {
      const { relay, session } = yield* start
      yield* relay.send(JSON.stringify({ type: "drain", reason: "deploy", reconnectWithinMs: 30_000 }))
      yield* relay.close(CloseCodes.Drain, "draining")
      const ended = failureOf(yield* Fiber.await(session))
      expect(ended).toBeInstanceOf(DrainSignal)
      expect(ended).toBeInstanceOf(Drained)
      expect(ended).toMatchObject({ _tag: "DrainSignal", source: "frame", reason: "deploy", reconnectWithinMs: 30_000 })
    }))

  it.effect("a drain frame with a reconnectWithinMs out of bounds is a bad frame, ignored", () =>
    Effect.gen(function*() {
      const { next, relay, send, session } = yield* start
      yield* relay.send(JSON.stringify({ type: "drain", reconnectWithinMs: 3_600_000 }))
      yield* send(Ping.make({ ts: 3 }))
      expect(yield* next).toMatchObject({ _tag: "pong", ts: 3 })
      yield* relay.close(CloseCodes.PingTimeout, "Ping timeout")
      expect(failureOf(yield* Fiber.await(session))).toBeInstanceOf(SessionClosed)
    }))

  it.effect("a close with 4003 ends the session with HeldHere; 1013 with RelayBusy and the wait its reason names", () =>
    Effect.gen(function*() {
      const held = yield* start
      yield* held.relay.close(CloseCodes.HeldHere, "held here: try another relay")
      const heldEnd = failureOf(yield* Fiber.await(held.session))
      expect(heldEnd).toBeInstanceOf(HeldHere)
      expect(heldEnd).toMatchObject({ source: "relay" })

      const busy = yield* start
      yield* busy.relay.close(CloseCodes.TryAgainLater, retryAfterReason(1_234))
      expect(failureOf(yield* Fiber.await(busy.session))).toEqual(new RelayBusy({ retryAfterMs: 1_234, reason: retryAfterReason(1_234) }))

      const vague = yield* start
      yield* vague.relay.close(CloseCodes.TryAgainLater, "later")
      expect(failureOf(yield* Fiber.await(vague.session))).toMatchObject({ _tag: "RelayBusy", retryAfterMs: undefined })
    }))

  it.effect("greeting: the first frame, when it is a hello; undefined when the first frame is anything else", () =>
    Effect.gen(function*() {
      const hello = Hello.make({ relayId: "iad:m1", region: "iad", tunnelId: "t1" })
      const greeted = yield* Deferred.make<Hello | undefined>()
      const first = yield* startWith({ ...options, greeting: greeted })
      yield* first.relay.send("not json")
      expect(yield* Deferred.isDone(greeted)).toBe(false)
      yield* first.send(hello)
      expect(yield* Deferred.await(greeted)).toEqual(hello)
      // Stopping a session on a relay that said hello: the relay is told the host is leaving, and
      // the session waits for the relay to close the tunnel (once what it sent is answered).
      const stopping = yield* Effect.fork(Fiber.interrupt(first.session))
      expect(yield* first.next).toMatchObject({ _tag: "drain" })
      expect(stopping.unsafePoll()).toBeNull()
      yield* first.relay.close(1000, "host leaving")
      yield* Fiber.join(stopping)

      const other = yield* Deferred.make<Hello | undefined>()
      const second = yield* startWith({ ...options, greeting: other })
      yield* second.send(Ping.make({ ts: 1 }))
      yield* second.send(hello)
      expect(yield* Deferred.await(other)).toBeUndefined()
      // A late hello changes nothing: the session goes on.
      expect(yield* second.next).toMatchObject({ _tag: "pong", ts: 1 })
      // No hello first: nothing is said on stopping, and nothing is waited for.
      yield* Fiber.interrupt(second.session)
    }))
})
