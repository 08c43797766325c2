/**
 * Generator 5's hostile control messages: heads for streams that are not waiting (responding,
 * WebSocket, gone, unknown), heads with a bad stream, status, length, `end` or headers, a head
 * that declares a length and ends the body, statuses under 200, resets and `ws:close` for every
 * kind of stream with odd reasons and codes, messages of version 1 or of the wrong direction,
 * invalid drains, text that is not a message.
 */
import { HostToRelayV2Codec, StreamFrames } from "@effect-relay/protocol"
import { anyId, type NamedAct, streamId, unknownId } from "./StreamActs.js"
import type { Pick } from "./StreamBooks.js"
import type { Prng } from "./Prng.js"
import { oddString } from "./Values.js"

const raw = (message: Record<string, unknown>) => JSON.stringify(message)

export const hostileControl = (r: Prng): NamedAct =>
  r.weighted<() => NamedAct>([
    [() => ({
      note: "head for a stream that is not waiting",
      act: (books) => {
        const { id, what } = r.weighted<() => { id: number; what: string }>([
          [() => streamId(r, books, "responding"), 3],
          [() => streamId(r, books, "channel"), 1],
          [() => streamId(r, books, "gone"), 2],
          [() => unknownId(r), 2]
        ])()
        books.sendText(HostToRelayV2Codec.encode({ _tag: "http:response", stream: id === 0 ? 1 : id, status: 200, headers: {}, end: r.chance(0.5) }))
        return what
      }
    }), 4],
    [() => ({
      note: "head with a bad field",
      act: (books) => {
        const { id, what } = streamId(r, books, "waiting")
        const message: Record<string, unknown> = { type: "http:response", stream: id, status: 200, headers: { "content-type": "text/plain" }, end: false }
        const change = r.weighted<() => string>([
          [() => ((message.stream = r.pick<unknown>([0, -1, 1.5, StreamFrames.maxStreamId + 1, 2 ** 53, "1", null, [id]])), "stream"), 2],
          [() => ((message.status = r.pick<unknown>([0, 99, 100, 101, 103, 199, 600, 999, 200.5, "200", null])), "status"), 3],
          [() => ((message.length = r.pick<unknown>([-1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, "5", null])), "length"), 3],
          [() => ((message.end = r.pick<unknown>(["true", 1, null])), "end"), 1],
          [() => (delete message.end, "no end"), 1],
          [() => ((message.headers = r.pick<unknown>([[], "x", { a: 1 }, { "x\r\ny": "v" }, { x: "a\r\nb" }, { "x-big": "v".repeat(100 * 1024) }])), "headers"), 3],
          [() => ((message.id = String(id)), delete message.stream, "a version 1 id"), 2]
        ])()
        books.sendText(raw(message))
        return `${change}: ${JSON.stringify(message).slice(0, 120)}, ${what}`
      }
    }), 6],
    [() => ({
      note: "head whose end cuts a declared length",
      act: (books) => {
        const { id, what } = streamId(r, books, "waiting")
        const length = r.pick([1, 5, 100_000])
        books.sendText(HostToRelayV2Codec.encode({ _tag: "http:response", stream: id, status: 200, headers: { "x-fuzz-stream": String(id) }, length, end: true }))
        return `length ${length}, ${what}`
      }
    }), 2],
    [() => ({
      note: "head with a status the relay does not pass on",
      act: (books) => {
        const { id, what } = streamId(r, books, "waiting")
        const status = r.pick([100, 101, 102, 103, 150, 199])
        books.sendText(HostToRelayV2Codec.encode({ _tag: "http:response", stream: id, status, headers: {}, end: r.chance(0.5) }))
        return `status ${status}, ${what}`
      }
    }), 2],
    [() => ({
      note: "reset",
      act: (books) => {
        const { id, what } = r.weighted<() => { id: number; what: string }>([
          [() => streamId(r, books, "responding"), 2],
          [() => streamId(r, books, "waiting"), 2],
          [() => streamId(r, books, "channel"), 1],
          [() => streamId(r, books, "gone"), 2],
          [() => unknownId(r), 2]
        ])()
        const reason = r.weighted<() => unknown>([[() => undefined, 2], [() => "fuzz", 2], [() => "r".repeat(r.int(201, 5000)), 1], [() => 5, 1]])()
        books.sendText(raw({ type: "reset", stream: id, ...(reason === undefined ? {} : { reason }) }))
        return `${what}${typeof reason === "string" && reason.length > 200 ? ", reason over 200" : typeof reason === "number" ? ", reason a number" : ""}`
      }
    }), 5],
    [() => ({
      note: "ws:close",
      act: (books) => {
        const { id, what } = streamId(r, books, r.pick<Pick>(["channel", "channel", "responding", "gone"]))
        const code = r.pick<unknown>([undefined, 1000, 1001, 3000, 4999, 0, 999, 1004, 1005, 1006, 1015, 5000, 65536, -1, 1.5, "1000"])
        books.sendText(raw({ type: "ws:close", stream: id, ...(code === undefined ? {} : { code }), ...(r.chance(0.2) ? { reason: "x".repeat(r.int(100, 300)) } : {}) }))
        return `code ${JSON.stringify(code)}, ${what}`
      }
    }), 3],
    [() => ({
      note: "message of another kind",
      act: (books) => {
        const { id } = anyId(r, books)
        const message = r.pick<Record<string, unknown>>([
          { type: "hello", relayId: "x", region: "x", tunnelId: "t", streamWindow: r.pick([-1, 0, 2 ** 40, 1.5]), tunnelWindow: 0 },
          { type: "window", stream: id, bytes: r.pick([0, -1, 2 ** 32, 2 ** 53]) },
          { type: "ping", ts: 1 },
          { type: "http", stream: id, method: "GET", path: "/", headers: {}, end: true },
          { type: "ws:open", stream: id, path: "/" },
          { type: "ws:frame", id: String(id), data: "x" },
          { type: "http:cancel", id: String(id) },
          // (A valid drain would end the tunnel, as it should: only invalid ones.)
          r.chance(0.5) ? { type: "drain", reason: r.pick<unknown>([1, null, ["x"], {}]) } : { type: "drain", reconnectWithinMs: r.pick<unknown>([-1, 60_001, 1.5, "5"]) },
          { type: "pong", ts: "soon" },
          { type: "http:response", id: String(id), status: 200, headers: {}, body: "v1" }
        ])
        books.sendText(raw(message))
        return String(message.type)
      }
    }), 4],
    [() => ({
      note: "text that is not a message",
      act: (books) => {
        const text = r.pick(["", "{", "[]", "null", "{\"type\":1}", "{\"type\":\"http:response\",\"stream\":", oddString(r, r.int(1, 40))])
        books.sendText(text)
        return JSON.stringify(text.slice(0, 40))
      }
    }), 2]
  ])()
