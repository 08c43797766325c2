import {
  CloseCodes,
  type HostToRelay,
  HostToRelayCodec,
  type RelayToHost,
  RelayToHostCodec,
  Transport,
  WsClose,
  WsFrame,
  WsOpen
} from "@effect-relay/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Fiber, Queue, Stream } from "effect"
import type { IncomingMessage } from "node:http"
import type { WebSocket } from "ws"
import * as Session from "../src/Session.js"
import { layer as targetHttpLayer } from "../src/TargetHttp.js"
import { TargetUnreachableCode } from "../src/TargetChannels.js"
import { closedPort, wsServer } from "./servers.js"

/**
 * A session over an in-memory tunnel (the test plays the relay) whose target
 * is a real `ws` server on 127.0.0.1.
 */
const start = (targetUrl: string, queueFrames = 256) =>
  Effect.gen(function*() {
    const [relay, host] = yield* Transport.memoryPair
    const session = yield* Effect.fork(
      Session.run(host, { drainGraceMs: 2_000, watchdogMs: 60_000, channels: { targetUrl, connectTimeoutMs: 2_000, queueFrames } }).pipe(
        Effect.provide(targetHttpLayer({ targetUrl, requestTimeoutMs: 2_000, maxBodyBytes: 1024 }))
      )
    )
    const received = yield* Queue.unbounded<HostToRelay>()
    yield* Effect.fork(Stream.runForEach(relay.messages, (frame) => {
      const decoded = HostToRelayCodec.decode(frame as string)
      return Either.isRight(decoded) ? Queue.offer(received, decoded.right) : Effect.die(decoded.left)
    }))
    const send = (message: RelayToHost) => relay.send(RelayToHostCodec.encode(message))
    const next = Queue.take(received).pipe(Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("no frame from the host") }))
    return { relay, session, send, next }
  })

/** An echo server: text comes back as text, binary as binary. `close-me` makes it close with 4100. */
const echoServer = (options: ConstructorParameters<typeof import("ws").WebSocketServer>[0] = {}) =>
  Effect.gen(function*() {
    const server = yield* wsServer(options)
    const connections = yield* Queue.unbounded<{ readonly socket: WebSocket; readonly request: IncomingMessage; readonly closed: Deferred.Deferred<{ code: number; reason: string }> }>()
    server.wss.on("connection", (socket, request) => {
      const closed = Deferred.unsafeMake<{ code: number; reason: string }>(undefined as never)
      socket.on("close", (code, reason) => Deferred.unsafeDone(closed, Effect.succeed({ code, reason: reason.toString() })))
      socket.on("message", (data, isBinary) => {
        if (!isBinary && data.toString() === "close-me") return socket.close(4100, "done")
        socket.send(data, { binary: isBinary })
      })
      Queue.unsafeOffer(connections, { socket, request, closed })
    })
    return { ...server, connections }
  })

describe("WebSocket channels (real ws target)", () => {
  it.scopedLive("echo: text frames as text, binary frames as base64, path and query and headers reach the target", () =>
    Effect.gen(function*() {
      const { connections, url } = yield* echoServer()
      const { next, send, session } = yield* start(url)
      yield* send(WsOpen.make({ id: "c1", path: "/echo", query: "a=1&b=2", headers: { "x-test": "yes", "sec-websocket-key": "bogus" } }))
      yield* send(WsFrame.make({ id: "c1", data: "hello" }))
      const bytes = Buffer.from([0, 255, 1, 2, 0xc3, 0x28])
      yield* send(WsFrame.make({ id: "c1", data: bytes.toString("base64"), encoding: "base64" }))
      // Valid UTF-8 sent as a binary frame stays binary (base64) on the way back.
      yield* send(WsFrame.make({ id: "c1", data: Buffer.from("abc").toString("base64"), encoding: "base64" }))

      const connection = yield* Queue.take(connections)
      expect(connection.request.url).toBe("/echo?a=1&b=2")
      expect(connection.request.headers["x-test"]).toBe("yes")

      expect(yield* next).toEqual(WsFrame.make({ id: "c1", data: "hello" }))
      expect(yield* next).toEqual(WsFrame.make({ id: "c1", data: bytes.toString("base64"), encoding: "base64" }))
      expect(yield* next).toEqual(WsFrame.make({ id: "c1", data: Buffer.from("abc").toString("base64"), encoding: "base64" }))

      // ws:close from the relay closes the target socket with that code and reason.
      yield* send(WsClose.make({ id: "c1", code: 4000, reason: "bye" }))
      expect(yield* Deferred.await(connection.closed)).toEqual({ code: 4000, reason: "bye" })
      yield* Fiber.interrupt(session)
    }))

  it.scopedLive("the client's subprotocol (the one the relay accepted: its first) is offered to the target", () =>
    Effect.gen(function*() {
      const { connections, url } = yield* echoServer({ handleProtocols: (protocols) => (protocols.has("vite-hmr") ? "vite-hmr" : false) })
      const { next, send, session } = yield* start(url)
      yield* send(WsOpen.make({ id: "c9", path: "/", query: "token=vite-s-own", headers: { "sec-websocket-protocol": "vite-hmr, vite-ping" } }))
      yield* send(WsFrame.make({ id: "c9", data: "hot" }))
      const connection = yield* Queue.take(connections)
      expect(connection.request.headers["sec-websocket-protocol"]).toBe("vite-hmr")
      expect(connection.socket.protocol).toBe("vite-hmr")
      expect(yield* next).toEqual(WsFrame.make({ id: "c9", data: "hot" }))
      yield* Fiber.interrupt(session)
    }))

  it.scopedLive("frames sent before the target socket is open are queued and delivered in order", () =>
    Effect.gen(function*() {
      // The target takes 200 ms to accept the upgrade.
      const { url } = yield* echoServer({ verifyClient: (_info, done) => setTimeout(() => done(true), 200) })
      const { next, send, session } = yield* start(url)
      yield* send(WsOpen.make({ id: "c2", path: "/" }))
      for (let i = 0; i < 5; i++) yield* send(WsFrame.make({ id: "c2", data: `m${i}` }))
      const echoed: Array<string> = []
      for (let i = 0; i < 5; i++) {
        const frame = yield* next
        expect(frame._tag).toBe("ws:frame")
        echoed.push((frame as WsFrame).data)
      }
      expect(echoed).toEqual(["m0", "m1", "m2", "m3", "m4"])
      yield* Fiber.interrupt(session)
    }))

  it.scopedLive("the target closing sends ws:close with its code and reason", () =>
    Effect.gen(function*() {
      const { url } = yield* echoServer()
      const { next, send, session } = yield* start(url)
      yield* send(WsOpen.make({ id: "c3", path: "/" }))
      yield* send(WsFrame.make({ id: "c3", data: "close-me" }))
      expect(yield* next).toEqual(WsClose.make({ id: "c3", code: 4100, reason: "done" }))
      yield* Fiber.interrupt(session)
    }))

  it.scopedLive(`a target that refuses the WebSocket: ws:close ${TargetUnreachableCode} "target unreachable"`, () =>
    Effect.gen(function*() {
      const { url } = yield* echoServer({ verifyClient: () => false })
      const { next, send, session } = yield* start(url)
      yield* send(WsOpen.make({ id: "c4", path: "/" }))
      expect(yield* next).toEqual(WsClose.make({ id: "c4", code: 1011, reason: "target unreachable" }))

      const port = yield* closedPort
      const down = yield* start(`http://127.0.0.1:${port}`)
      yield* down.send(WsOpen.make({ id: "c5", path: "/" }))
      expect(yield* down.next).toEqual(WsClose.make({ id: "c5", code: 1011, reason: "target unreachable" }))
      yield* Fiber.interrupt(session)
      yield* Fiber.interrupt(down.session)
    }))

  it.scopedLive("queue overflow: the channel is closed with 1013 towards the relay and the target", () =>
    Effect.gen(function*() {
      const { connections, url } = yield* echoServer({ verifyClient: (_info, done) => setTimeout(() => done(true), 200) })
      const { next, send, session } = yield* start(url, 4)
      yield* send(WsOpen.make({ id: "c6", path: "/" }))
      for (let i = 0; i < 6; i++) yield* send(WsFrame.make({ id: "c6", data: `m${i}` }))
      expect(yield* next).toEqual(WsClose.make({ id: "c6", code: CloseCodes.TryAgainLater, reason: "Frame queue full" }))
      // Once the target accepts, the channel closes it with 1013 too.
      const connection = yield* Queue.take(connections)
      expect((yield* Deferred.await(connection.closed)).code).toBe(CloseCodes.TryAgainLater)
      // Later frames for the closed channel are ignored; the session goes on.
      yield* send(WsFrame.make({ id: "c6", data: "late" }))
      yield* send(WsOpen.make({ id: "c7", path: "/" }))
      yield* send(WsFrame.make({ id: "c7", data: "still here" }))
      expect(yield* next).toEqual(WsFrame.make({ id: "c7", data: "still here" }))
      yield* Fiber.interrupt(session)
    }))

  it.scopedLive("channels are closed when the session ends", () =>
    Effect.gen(function*() {
      const { connections, url } = yield* echoServer()
      const { next, relay, send } = yield* start(url)
      yield* send(WsOpen.make({ id: "c8", path: "/" }))
      yield* send(WsFrame.make({ id: "c8", data: "up" }))
      yield* next
      const connection = yield* Queue.take(connections)
      yield* relay.close(CloseCodes.PingTimeout, "Ping timeout")
      const closed = yield* Deferred.await(connection.closed).pipe(Effect.timeout("3 seconds"))
      expect(closed.code).toBe(1000)
    }))
})
