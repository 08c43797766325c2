/**
 * Version 2 from a host that breaks the rules: a hand-driven host on a real WebSocket speaking
 * version 2 sends exactly the frames each case needs. Whatever it sends, only the stream concerned
 * fails (its client gets a 502 or a cut connection); the tunnel keeps serving the next request;
 * every problem is counted.
 */
import {
  Features,
  FeaturesHeader,
  HostToRelayV2Codec,
  type RelayToHostV2,
  RelayToHostV2Codec,
  StreamFrames,
  TunnelProtocols,
  WindowHeader
} from "@effect-relay/protocol"
import { token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as http from "node:http"
import WebSocket from "ws"
import { startRelay } from "./support.js"

const hostId = "acme:edges"

type HttpHead = Extract<RelayToHostV2, { readonly _tag: "http" }>

/** A version 2 host whose answer to each request is `answer`, which may send anything. */
const rawHost = (relayWs: string, t: string, answer: (head: HttpHead, ws: WebSocket) => void) =>
  Effect.acquireRelease(
    Effect.async<{ ws: WebSocket; heads: Array<HttpHead> }, Error>((resume) => {
      const ws = new WebSocket(`${relayWs}/tunnel?hostId=${hostId}`, [TunnelProtocols.v1, TunnelProtocols.v2], {
        headers: { authorization: `Bearer ${t}`, [FeaturesHeader]: Features.hello, [WindowHeader]: "stream=65536, tunnel=1048576" }
      })
      const heads: Array<HttpHead> = []
      ws.on("message", (data, isBinary) => {
        if (isBinary) return
        const decoded = RelayToHostV2Codec.decode(data.toString())
        if (Either.isLeft(decoded)) return
        const m = decoded.right
        if (m._tag === "hello") resume(Effect.succeed({ ws, heads }))
        if (m._tag === "ping") ws.send(HostToRelayV2Codec.encode({ _tag: "pong", ts: m.ts }))
        if (m._tag === "http") {
          heads.push(m)
          answer(m, ws)
        }
      })
      ws.once("error", (e) => resume(Effect.fail(e)))
    }),
    ({ ws }) => Effect.sync(() => ws.terminate())
  )

const head = (stream: number, length?: number) =>
  HostToRelayV2Codec.encode({ _tag: "http:response", stream, status: 200, headers: { "content-type": "text/plain" }, ...(length !== undefined ? { length } : {}), end: false })
const data = (stream: number, bytes: Buffer | string) => StreamFrames.encode(StreamFrames.FrameKind.Data, stream, Buffer.from(bytes))

/** A GET through the relay: status, body, and whether the body ended complete. */
const fetchRaw = (url: string, t: string) =>
  Effect.promise(() =>
    new Promise<{ status: number; body: string; complete: boolean }>((resolve) => {
      http.get(url, { headers: { authorization: `Bearer ${t}` } }, (res) => {
        let body = ""
        res.on("data", (c: Buffer) => (body += c.toString()))
        res.on("error", () => {})
        res.on("close", () => resolve({ status: res.statusCode ?? 0, body, complete: res.complete }))
      }).on("error", () => resolve({ status: 0, body: "", complete: false }))
    })
  )

const badFrames = (relayHttp: string) =>
  Effect.promise(async () => {
    const text = await (await fetch(`${relayHttp}/metrics`)).text()
    return Number(/relay_limit_hits_total\{limit="bad_frame"\} (\d+)/.exec(text)?.[1] ?? 0)
  })

describe("version 2 streams from a host that breaks the rules", () => {
  it.scoped("bytes beyond the stream's credit reset that stream (the client's response is cut); the next request is served", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay({ streamWindowBytes: 4096 })
      const t = yield* token({ org: "acme" })
      yield* rawHost(relay.ws, t, (m, ws) => {
        ws.send(head(m.stream))
        // The relay granted 4096 bytes: 5000 in one frame break the stream's credit.
        if (m.path === "/greedy") ws.send(data(m.stream, Buffer.alloc(5000, 65)))
        else {
          ws.send(data(m.stream, "fine"))
          ws.send(StreamFrames.end(m.stream))
        }
      })
      const before = yield* badFrames(relay.http)
      const greedy = yield* fetchRaw(`${relay.http}/hosts/${hostId}/greedy`, t)
      expect(greedy.status).toBe(200)
      expect(greedy.complete).toBe(false)
      expect(yield* badFrames(relay.http)).toBeGreaterThan(before)
      expect(yield* fetchRaw(`${relay.http}/hosts/${hostId}/next`, t)).toEqual({ status: 200, body: "fine", complete: true })
    }))

  it.scoped("bytes for an unknown stream, bytes after End, unreadable binary frames: dropped and counted; responses stay whole", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* rawHost(relay.ws, t, (m, ws) => {
        ws.send(data(999_999, "nobody's"))
        ws.send(Buffer.from([0, 0]))
        ws.send(Buffer.from([42, 0, 0, 0, 1, 9]))
        ws.send(head(m.stream, 5))
        ws.send(data(m.stream, "whole"))
        ws.send(StreamFrames.end(m.stream))
        ws.send(data(m.stream, "after the end"))
      })
      const before = yield* badFrames(relay.http)
      for (let i = 0; i < 3; i++) {
        expect(yield* fetchRaw(`${relay.http}/hosts/${hostId}/x${i}`, t)).toEqual({ status: 200, body: "whole", complete: true })
      }
      expect((yield* badFrames(relay.http)) - before).toBeGreaterThanOrEqual(6)
    }))

  it.scoped("more bytes than the declared length, or fewer before End: the client's response is cut, never passed off as complete", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* rawHost(relay.ws, t, (m, ws) => {
        ws.send(head(m.stream, 4))
        ws.send(data(m.stream, m.path === "/long" ? "toolong" : "ab"))
        ws.send(StreamFrames.end(m.stream))
      })
      expect((yield* fetchRaw(`${relay.http}/hosts/${hostId}/long`, t)).complete).toBe(false)
      expect((yield* fetchRaw(`${relay.http}/hosts/${hostId}/short`, t)).complete).toBe(false)
    }))

  it.scoped("a body before its head, and a reset before the head: 502 for that request", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* rawHost(relay.ws, t, (m, ws) => {
        if (m.path === "/early") ws.send(data(m.stream, "no head yet"))
        else ws.send(HostToRelayV2Codec.encode({ _tag: "reset", stream: m.stream, reason: "target failed" }))
      })
      expect((yield* fetchRaw(`${relay.http}/hosts/${hostId}/early`, t)).status).toBe(502)
      expect((yield* fetchRaw(`${relay.http}/hosts/${hostId}/reset`, t)).status).toBe(502)
    }))

  it.scoped("a head that declares a length and ends the body at once: 502, counted; a kept-alive client is not left waiting for the bytes (found by the fuzz)", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* rawHost(relay.ws, t, (m, ws) => {
        ws.send(HostToRelayV2Codec.encode({ _tag: "http:response", stream: m.stream, status: 200, headers: {}, length: 5, end: true }))
      })
      const before = yield* badFrames(relay.http)
      const agent = new http.Agent({ keepAlive: true })
      yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
      const started = Date.now()
      const got = yield* Effect.promise(() =>
        new Promise<{ status: number; body: string; complete: boolean }>((resolve) => {
          http.get(`${relay.http}/hosts/${hostId}/declared`, { agent, headers: { authorization: `Bearer ${t}` } }, (res) => {
            let body = ""
            res.on("data", (c: Buffer) => (body += c.toString()))
            res.on("error", () => {})
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body, complete: res.complete }))
            res.on("close", () => resolve({ status: res.statusCode ?? 0, body, complete: res.complete }))
          }).on("error", () => resolve({ status: 0, body: "", complete: false }))
        })
      )
      expect(got.status).toBe(502)
      expect(got.complete).toBe(true)
      expect(Date.now() - started).toBeLessThan(2000)
      expect((yield* badFrames(relay.http)) - before).toBeGreaterThanOrEqual(1)
    }))

  it.scoped("a body before its head, End before the head, fewer bytes than declared, a second head: each fails its stream and is counted (found by the fuzz)", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* rawHost(relay.ws, t, (m, ws) => {
        switch (m.path) {
          case "/body-first":
            return ws.send(data(m.stream, "early"))
          case "/end-first":
            return ws.send(StreamFrames.end(m.stream))
          case "/short":
            ws.send(head(m.stream, 10))
            ws.send(data(m.stream, "abc"))
            return ws.send(StreamFrames.end(m.stream))
          case "/two-heads":
            ws.send(head(m.stream))
            ws.send(data(m.stream, "abc"))
            return ws.send(head(m.stream))
          default:
            ws.send(head(m.stream, 4))
            ws.send(data(m.stream, "fine"))
            ws.send(StreamFrames.end(m.stream))
        }
      })
      for (const [path, status] of [["/body-first", 502], ["/end-first", 502], ["/short", 200], ["/two-heads", 200]] as const) {
        const before = yield* badFrames(relay.http)
        const got = yield* fetchRaw(`${relay.http}/hosts/${hostId}${path}`, t)
        expect(got.status, path).toBe(status)
        if (status === 200) expect(got.complete, path).toBe(false)
        expect((yield* badFrames(relay.http)) - before, path).toBe(1)
      }
      expect(yield* fetchRaw(`${relay.http}/hosts/${hostId}/next`, t)).toEqual({ status: 200, body: "fine", complete: true })
    }))

  it.scopedLive("a client that takes nothing of its response is cut after the send timeout, also once the host has ended the body", () =>
    Effect.gen(function*() {
      // The windows the host below counts on (it reads no hello): with larger ones the relay
      // would grant nothing until the host had sent more than it dares, and nothing would fill.
      const relay = yield* startRelay({ sendTimeoutMs: 1000, streamWindowBytes: 65536, tunnelWindowBytes: 1048576 })
      const t = yield* token({ org: "acme" })
      // The host sends until the relay stops granting (the client's socket and the sockets between
      // are full, and the relay holds what the client has not taken), then ends the body at once.
      let ended = false
      yield* rawHost(relay.ws, t, (m, ws) => {
        let credit = 65536
        let tunnelCredit = 1048576
        let stall: ReturnType<typeof setTimeout> | undefined
        const piece = Buffer.alloc(16 * 1024, 0x61)
        const pump = () => {
          while (!ended && credit >= piece.length && tunnelCredit >= piece.length) {
            ws.send(data(m.stream, piece))
            credit -= piece.length
            tunnelCredit -= piece.length
          }
          clearTimeout(stall)
          stall = setTimeout(() => {
            ended = true
            ws.send(StreamFrames.end(m.stream))
          }, 200)
        }
        ws.on("message", (frame, isBinary) => {
          if (!isBinary || ended) return
          const f = StreamFrames.decode(frame as Buffer)
          if (typeof f === "string" || f.kind !== StreamFrames.FrameKind.Window) return
          if (f.stream === 0) tunnelCredit += StreamFrames.windowBytes(f)
          else if (f.stream === m.stream) credit += StreamFrames.windowBytes(f)
          pump()
        })
        ws.send(head(m.stream))
        pump()
      })
      const got = yield* Effect.promise(() =>
        new Promise<{ bytes: number; complete: boolean }>((resolve) => {
          http.get(`${relay.http}/hosts/${hostId}/big`, { headers: { authorization: `Bearer ${t}` } }, (res) => {
            let bytes = 0
            // Takes the head, then nothing until well after the send timeout has passed since the End.
            res.pause()
            res.on("data", (c: Buffer) => (bytes += c.length))
            res.on("error", () => {})
            res.on("close", () => resolve({ bytes, complete: res.complete }))
            const waitForEnd = setInterval(() => {
              if (!ended) return
              clearInterval(waitForEnd)
              setTimeout(() => res.resume(), 2500)
            }, 20)
          }).on("error", () => resolve({ bytes: 0, complete: false }))
        })
      )
      expect(ended).toBe(true)
      expect(got.complete).toBe(false)
    }), 30_000)

  it.scopedLive("a client that goes away mid-stream resets its stream at the host (noticed at the next bytes written to it)", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      const resets: Array<number> = []
      const host = yield* rawHost(relay.ws, t, (m, ws) => {
        ws.send(head(m.stream))
        // A stream that goes on (a feed): a chunk every 20 ms until the relay resets it.
        const timer = setInterval(() => {
          if (resets.includes(m.stream) || ws.readyState !== ws.OPEN) return clearInterval(timer)
          ws.send(data(m.stream, "more bytes"))
        }, 20)
      })
      host.ws.on("message", (frame, isBinary) => {
        if (isBinary) return
        const decoded = RelayToHostV2Codec.decode(frame.toString())
        if (Either.isRight(decoded) && decoded.right._tag === "reset") resets.push(decoded.right.stream)
      })
      yield* Effect.promise(() =>
        new Promise<void>((resolve) => {
          const req = http.get(`${relay.http}/hosts/${hostId}/stream`, { headers: { authorization: `Bearer ${t}` } }, (res) => {
            res.once("data", () => {
              req.destroy()
              resolve()
            })
          })
          req.on("error", () => {})
        })
      )
      const deadline = Date.now() + 3000
      while (resets.length === 0 && Date.now() < deadline) yield* Effect.sleep("10 millis")
      expect(resets).toEqual([host.heads[0]!.stream])
    }))
})
