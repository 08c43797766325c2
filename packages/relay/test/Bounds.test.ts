/**
 * The smaller bounds a client or a host meets, each with what it sees: too many WebSockets on
 * one tunnel, a request given up on (the host stops its call), a 413 that arrives while the
 * client is still sending.
 */
import { HostAgent, HostAgentLive } from "@effect-relay/host"
import { HttpResponse } from "@effect-relay/protocol"
import { fakeHost, openSocket, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import * as http from "node:http"
import * as net from "node:net"
import { eventually, get, startRelay } from "./support.js"

const hostId = "acme:bounds"

describe("bounds a peer meets", () => {
  it.scopedLive("a WebSocket over MAX_CHANNELS_PER_TUNNEL is refused 503 too_many_channels before the upgrade", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay({ maxChannelsPerTunnel: 2 })
      const t = yield* token({ org: "acme" })
      yield* fakeHost(relay.ws, hostId, t)
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      const url = `${relay.ws}/hosts/${hostId}/chat`
      yield* openSocket(url, { authorization: `Bearer ${t}` })
      yield* openSocket(url, { authorization: `Bearer ${t}` })
      yield* eventually(Effect.filterOrFail(Effect.sync(() => Option.getOrThrow(relay.registry.get(hostId as never)).channelCount()), (n) => n === 2))
      expect(yield* Effect.flip(openSocket(url, { authorization: `Bearer ${t}` }))).toEqual({ status: 503 })
    }))

  it.scopedLive("a client that is gone (reset), or a request that timed out, stops the host's call to its target (http:cancel); the tunnel serves the next request", () =>
    Effect.gen(function*() {
      // A target that answers /slow only after 10 s, and records whether the call was abandoned.
      const aborted: Array<string> = []
      const target = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const server = http.createServer((req, res) => {
            if (req.url === "/slow") {
              const timer = setTimeout(() => res.end("late"), 10_000)
              res.on("close", () => {
                clearTimeout(timer)
                if (!res.writableFinished) aborted.push(req.url ?? "")
              })
              return
            }
            res.end("fast")
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.sync(() => {
          server.closeAllConnections()
          server.close()
        })
      )
      const relay = yield* startRelay({ requestTimeoutMs: 1000 })
      const t = yield* token({ org: "acme" })
      const targetUrl = `http://127.0.0.1:${(target.address() as net.AddressInfo).port}`
      const agent = yield* Layer.build(HostAgentLive({ relayUrl: relay.ws, hostId, token: t, targetUrl }))
      yield* Context.get(agent, HostAgent).awaitConnected
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      // A client that goes away for good: its connection is reset (a polite FIN alone reads as a
      // half-close, whose request is still answered).
      const client = net.connect(relay.port, "127.0.0.1")
      client.on("error", () => {})
      client.write(`GET /hosts/${hostId}/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\n\r\n`)
      yield* Effect.sleep("200 millis")
      client.resetAndDestroy()
      yield* eventually(Effect.filterOrFail(Effect.sync(() => aborted.length), (n) => n === 1), 3000)
      // A request the relay stops waiting for (504 after REQUEST_TIMEOUT_MS) is stopped at the target too.
      const timedOut = yield* get(`${relay.http}/hosts/${hostId}/slow`, t)
      expect(timedOut.status).toBe(504)
      yield* eventually(Effect.filterOrFail(Effect.sync(() => aborted.length), (n) => n === 2), 3000)
      const next = yield* get(`${relay.http}/hosts/${hostId}/fast`, t)
      expect(yield* Effect.promise(() => next.text())).toBe("fast")
    }))

  it.scopedLive("a 20 MB upload over MAX_BODY_BYTES still gets its 413 while it is sending (the relay reads and drops the rest for a moment)", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* fakeHost(relay.ws, hostId, t)
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      for (const chunked of [false, true]) {
        const answer = yield* Effect.async<string>((resume) => {
          const socket = net.connect(relay.port, "127.0.0.1")
          let data = ""
          let done = false
          const finish = (result: string) => {
            if (done) return
            done = true
            socket.destroy()
            resume(Effect.succeed(result))
          }
          socket.on("data", (d) => {
            data += d.toString("latin1")
            if (data.includes("\r\n\r\n")) finish(data.split("\r\n")[0]!)
          })
          socket.on("error", (e: NodeJS.ErrnoException) => finish(`error ${e.code}`))
          socket.on("close", () => finish(`closed: ${data.split("\r\n")[0]}`))
          const length = 20 * 1024 * 1024
          socket.write(
            `POST /hosts/${hostId}/up HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\n` +
              (chunked ? "Transfer-Encoding: chunked\r\n\r\n" : `Content-Length: ${length}\r\n\r\n`)
          )
          const piece = Buffer.alloc(256 * 1024, 0x61)
          let sent = 0
          const pump = () => {
            while (!done && sent < length) {
              sent += piece.length
              const frame = chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")]) : piece
              if (!socket.write(frame)) return void socket.once("drain", pump)
            }
          }
          pump()
        })
        expect(answer, chunked ? "chunked" : "declared").toBe("HTTP/1.1 413 Payload Too Large")
      }
    }))

  it.scopedLive("a bad frame sent right behind an authenticated upgrade request (same packet) closes that WebSocket, and the relay keeps serving", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* fakeHost(relay.ws, hostId, t, (req) => HttpResponse.make({ id: req.id, status: 200, headers: {}, body: "alive" }))
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      for (const path of [`/hosts/${hostId}/ws`, `/tunnel?hostId=acme:early`]) {
        const answer = yield* Effect.async<string>((resume) => {
          const socket = net.connect(relay.port, "127.0.0.1")
          let data = ""
          socket.on("data", (d) => (data += d.toString("latin1")))
          socket.on("error", () => {})
          socket.on("close", () => resume(Effect.succeed(data.split("\r\n")[0]!)))
          socket.write(Buffer.concat([
            Buffer.from(
              `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ),
            Buffer.from([0xc1, 0x80, 0, 0, 0, 0]) // RSV1 set: a protocol error
          ]))
        })
        expect(answer, path).toBe("HTTP/1.1 101 Switching Protocols")
      }
      const res = yield* get(`${relay.http}/hosts/${hostId}/x`, t)
      expect(yield* Effect.promise(() => res.text())).toBe("alive")
    }))

  it.scopedLive("a host's 204 with a header node:http refuses is a clean 502, and the client's keep-alive connection stays in step", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* fakeHost(relay.ws, hostId, t, (req) =>
        req.path === "/bad"
          ? HttpResponse.make({ id: req.id, status: 204, headers: { x: "a\r\nb" } })
          : HttpResponse.make({ id: req.id, status: 200, headers: {}, body: "second" }))
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      // Two requests on one connection: the second answer must be read as the second answer.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      const ask = (path: string) =>
        Effect.async<{ status: number; body: string }>((resume) => {
          http.get(`${relay.http}/hosts/${hostId}${path}`, { agent, headers: { authorization: `Bearer ${t}` } }, (res) => {
            let body = ""
            res.on("data", (d) => (body += d))
            res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body })))
          })
        })
      const bad = yield* ask("/bad")
      expect(bad.status).toBe(502)
      expect(JSON.parse(bad.body).error).toBe("bad_response")
      expect(yield* ask("/good")).toEqual({ status: 200, body: "second" })
      agent.destroy()
    }))
})
