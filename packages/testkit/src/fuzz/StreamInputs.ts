/**
 * Generator 5: version 2 hosts. While client requests stream through the relay (some to the evil
 * host `fuzz:evil2`, some to the well-behaved `fuzz:good2`), the evil host answers some honestly
 * (heads, body pieces within credit, End) and sends hostile binary frames and control messages:
 * truncated headers, unknown kinds, unknown stream ids and ids 0 and 2^32 - 1, bytes after End,
 * bytes over a stream's or the tunnel's window or beyond the credit it knows of, Window frames of
 * the wrong size or that overflow a counter, WebSocket messages on a body stream and body bytes on
 * a WebSocket, End twice or before the head, frames over 64 KiB, heads for streams that are not
 * waiting, bad statuses, lengths and `end` flags, resets and closes for streams that are not
 * there, messages of version 1 or of the wrong direction; and interleavings of all of it.
 *
 * Each act is built when it is sent, from the streams open then (`Books.pick`); what it does to a
 * stream is booked by `Books`, not here.
 */
import { HostToRelayV2Codec, StreamFrames } from "@effect-relay/protocol"
import type { Books, Pick, StreamEntry } from "./StreamBooks.js"
import type { Prng } from "./Prng.js"
import { invalidUtf8, oddString, size } from "./Values.js"

const { FrameKind } = StreamFrames

export type StreamInput =
  /** A client request to the evil host (`/hosts/fuzz:evil2/r/<nonce>`), held to its stream's book at the end of the batch. */
  | { readonly _tag: "Request"; readonly note: string; readonly method: string; readonly body: Buffer; readonly keepAlive: boolean; readonly abortAfterMs: number | undefined; readonly pauseMs: number | undefined }
  /** A client request to the well-behaved host: a GET of `size` bytes or a POST echoed; it must succeed whole. */
  | { readonly _tag: "Good"; readonly note: string; readonly method: "GET" | "POST"; readonly size: number; readonly chunked: boolean; readonly body: Buffer }
  /**
   * A well-behaved version 2 host of its own (`fuzz:w-<where>`) that announces hostile windows on
   * its upgrade (0, 1, 2^40, negative, garbage, repeated), then a client request through it that
   * must succeed whole; the host goes once it is answered.
   */
  | { readonly _tag: "Hello"; readonly note: string; readonly header: string | Array<string>; readonly method: "GET" | "POST"; readonly size: number; readonly body: Buffer }
  /** A client WebSocket through the evil host, so that it has channel streams. */
  | { readonly _tag: "Channel"; readonly note: string }
  /** Frames and messages from the evil host, honest or not; the detail of what was sent. */
  | { readonly _tag: "Act"; readonly note: string; readonly act: (books: Books) => string }
  /** A client request to the evil host, and once its stream reaches the host, `act` on that stream. */
  | { readonly _tag: "Targeted"; readonly note: string; readonly keepAlive: boolean; readonly act: (books: Books, stream: StreamEntry) => string }

type Act = (books: Books) => string

/** A stream id to name: a stream of the kind asked for, else one that is not there. */
const streamId = (r: Prng, books: Books, which: Pick): { readonly id: number; readonly what: string } => {
  const found = books.pick(which, r.next())
  if (found !== undefined) return { id: found.id, what: `${which} stream ${found.id}` }
  return unknownId(r)
}

const unknownId = (r: Prng): { readonly id: number; readonly what: string } =>
  r.weighted<() => { id: number; what: string }>([
    [() => ({ id: 0, what: "stream 0" }), 2],
    [() => ({ id: StreamFrames.maxStreamId, what: "stream 2^32-1" }), 2],
    [() => ({ id: r.int(1000, StreamFrames.maxStreamId - 1), what: "unknown stream" }), 3],
    [() => ({ id: r.int(1, 200), what: "unknown small stream" }), 2]
  ])()

const anyId = (r: Prng, books: Books) => streamId(r, books, r.pick<Pick>(["waiting", "responding", "channel", "gone", "any"]))

const data = (id: number, n: number, fill = 0x78) => StreamFrames.encode(FrameKind.Data, id, Buffer.alloc(n, fill))

/** Body bytes of `n`: small mostly, now and then around the piece size or larger. */
const dataSize = (r: Prng) => r.weighted<() => number>([[() => r.int(0, 64), 6], [() => r.int(65, 4096), 3], [() => r.pick([65535, 65536, 65537]), 1]])()

// ---- hostile binary frames -------------------------------------------------------------------

const hostileFrames = (r: Prng): { readonly note: string; readonly act: Act } =>
  r.weighted<() => { note: string; act: Act }>([
    [() => ({
      note: "truncated header",
      act: (books) => {
        const bytes = r.bytes(r.int(0, StreamFrames.headerBytes - 1))
        books.sendFrame(bytes)
        return `${bytes.length} B`
      }
    }), 3],
    [() => ({
      note: "unknown frame kind",
      act: (books) => {
        const kind = r.weighted<number>([[5, 3], [r.int(6, 127), 2], [r.int(128, 255), 2]])
        const { id, what } = anyId(r, books)
        books.sendFrame(StreamFrames.encode(kind as StreamFrames.FrameKind, id, r.bytes(r.int(0, 100))))
        return `kind ${kind}, ${what}`
      }
    }), 3],
    [() => ({
      note: "Data for a stream that is not there",
      act: (books) => {
        const { id, what } = r.chance(0.5) ? streamId(r, books, "gone") : unknownId(r)
        books.sendFrame(data(id, dataSize(r)))
        return what
      }
    }), 5],
    [() => ({
      note: "Data before the head",
      act: (books) => {
        const { id, what } = streamId(r, books, "waiting")
        books.sendFrame(data(id, r.int(1, 200)))
        return what
      }
    }), 3],
    [() => ({
      note: "Data over the stream's window",
      act: (books) => {
        const { id, what } = streamId(r, books, r.pick<Pick>(["responding", "responding", "waiting", "channel"]))
        const n = books.relayWindows().stream + r.int(1, 2000)
        books.sendFrame(data(id, n))
        return `${n} B, ${what}`
      }
    }), 4],
    [() => ({
      note: "Data over the tunnel's window",
      act: (books) => {
        const { id, what } = r.chance(0.7) ? streamId(r, books, "responding") : unknownId(r)
        const n = books.relayWindows().tunnel + r.int(1, 2000)
        books.sendFrame(data(id, n))
        return `${n} B, ${what}`
      }
    }), 2],
    [() => ({
      note: "Data beyond the credit known",
      act: (books) => {
        const e = books.pick("responding", r.next())
        if (e === undefined) return "no stream responding"
        const n = Math.min(e.credit + r.int(1, 4096), books.relayWindows().stream)
        for (let left = n; left > 0; left -= StreamFrames.maxDataBytes) books.sendFrame(data(e.id, Math.min(left, StreamFrames.maxDataBytes)))
        return `${n} B on stream ${e.id} with ${e.credit} B of credit known`
      }
    }), 3],
    [() => ({
      note: "Window frame",
      act: (books) => {
        const { id, what } = r.chance(0.3) ? { id: 0, what: "tunnel" } : anyId(r, books)
        const value = r.pick([0, 1, 1024, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff, r.int(0, 0xffff_ffff)])
        const frame = StreamFrames.encode(FrameKind.Window, id, Buffer.alloc(4))
        frame.writeUInt32BE(value, StreamFrames.headerBytes)
        const burst = r.chance(0.2) ? r.int(2, 20) : 1
        for (let i = 0; i < burst; i++) books.sendFrame(frame)
        return `${value} x${burst}, ${what}`
      }
    }), 5],
    [() => ({
      note: "Window frame of the wrong size",
      act: (books) => {
        const { id, what } = anyId(r, books)
        const n = r.pick([0, 1, 3, 5, 8, 100])
        books.sendFrame(StreamFrames.encode(FrameKind.Window, id, r.bytes(n)))
        return `${n} B payload, ${what}`
      }
    }), 2],
    [() => ({
      note: "End",
      act: (books) => {
        const { id, what } = r.weighted<() => { id: number; what: string }>([
          [() => streamId(r, books, "gone"), 3],
          [() => streamId(r, books, "waiting"), 2],
          [() => streamId(r, books, "channel"), 1],
          [() => unknownId(r), 2]
        ])()
        const withPayload = r.chance(0.2)
        books.sendFrame(withPayload ? StreamFrames.encode(FrameKind.End, id, r.bytes(r.int(1, 8))) : StreamFrames.end(id))
        return `${withPayload ? "with a payload, " : ""}${what}`
      }
    }), 4],
    [() => ({
      note: "End twice",
      act: (books) => {
        const e = books.pick("responding", r.next())
        if (e === undefined) return "no stream responding"
        e.finishing = true
        books.pump(e, Infinity)
        books.sendFrame(StreamFrames.end(e.id))
        return `stream ${e.id}`
      }
    }), 2],
    [() => ({
      note: "WebSocket message on a body stream",
      act: (books) => {
        const { id, what } = streamId(r, books, r.pick<Pick>(["responding", "waiting"]))
        books.sendFrame(StreamFrames.encode(r.chance(0.5) ? FrameKind.WsText : FrameKind.WsBinary, id, r.bytes(r.int(0, 100))))
        return what
      }
    }), 3],
    [() => ({
      note: "WebSocket message",
      act: (books) => {
        const { id, what } = streamId(r, books, "channel")
        const kind = r.pick([FrameKind.WsText, FrameKind.WsBinary])
        const payload = r.weighted<() => Buffer>([
          [() => Buffer.from(oddString(r, r.int(0, 50)).replace(/[\ud800-\udfff]/g, "?")), 4],
          [() => invalidUtf8(r), 2],
          [() => Buffer.alloc(0), 1],
          [() => Buffer.alloc(r.int(64 * 1024, 2 * 1024 * 1024), 0x61), 1]
        ])()
        books.sendFrame(StreamFrames.encode(kind, id, payload))
        return `${kind === FrameKind.WsText ? "text" : "binary"} ${payload.length} B, ${what}`
      }
    }), 3],
    [() => ({
      note: "Data on a WebSocket",
      act: (books) => {
        const { id, what } = streamId(r, books, "channel")
        books.sendFrame(data(id, dataSize(r)))
        return what
      }
    }), 2],
    [() => ({
      note: "oversized frame",
      act: (books) => {
        const { id, what } = r.chance(0.5) ? streamId(r, books, "responding") : unknownId(r)
        const n = r.int(1024 * 1024, 3 * 1024 * 1024)
        books.sendFrame(StreamFrames.encode(r.pick([FrameKind.Data, FrameKind.WsBinary]), id, Buffer.alloc(n, 0x7a)))
        return `${n} B, ${what}`
      }
    }), 1]
  ])()

// ---- hostile control messages ----------------------------------------------------------------

const raw = (message: Record<string, unknown>) => JSON.stringify(message)

const hostileControl = (r: Prng): { readonly note: string; readonly act: Act } =>
  r.weighted<() => { note: string; act: Act }>([
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

// ---- honest acts --------------------------------------------------------------------------------

const honest = (r: Prng): { readonly note: string; readonly act: Act } => {
  const status = r.pick([200, 200, 201, 404, 418, 500])
  const bodySize = r.weighted<() => number>([[() => 0, 1], [() => r.int(1, 2000), 5], [() => r.int(2001, 300_000), 3]])()
  const declare = r.chance(0.6)
  const pieces = r.int(1, 4)
  const u = r.next()
  const headOf = (books: Books, e: StreamEntry) => {
    books.head(e, status, bodySize, declare)
    return `head ${status} for stream ${e.id} (${bodySize} B${declare ? " declared" : ""})`
  }
  return r.weighted<() => { note: string; act: Act }>([
    [() => ({
      note: "honest head",
      act: (books) => {
        const e = books.pick("waiting", u)
        return e === undefined ? "none waiting" : headOf(books, e)
      }
    }), 3],
    [() => ({
      note: "honest body pieces",
      act: (books) => {
        const e = books.pick("responding", u)
        if (e === undefined) return "none responding"
        books.pump(e, pieces)
        return `stream ${e.id}: ${e.offset} of ${e.planned.length} B`
      }
    }), 3],
    [() => ({
      note: "honest rest of the body and End",
      act: (books) => {
        const e = books.pick("responding", u)
        if (e === undefined) return "none responding"
        e.finishing = true
        books.pump(e, Infinity)
        return `stream ${e.id}: ${e.offset} of ${e.planned.length} B${e.over === undefined ? " (waiting for credit)" : ""}`
      }
    }), 2],
    [() => ({
      note: "honest whole answer",
      act: (books) => {
        const e = books.pick("waiting", u)
        if (e === undefined) return "none waiting"
        const what = headOf(books, e)
        e.finishing = true
        books.pump(e, Infinity)
        return what
      }
    }), 3]
  ])()
}

/** Honest and hostile acts on one stream, in a row: the relay must keep them apart. */
const interleaving = (r: Prng): { readonly note: string; readonly act: Act } => {
  const steps = Array.from({ length: r.int(2, 6) }, () => (r.chance(0.5) ? honest(r.fork("h")) : r.chance(0.7) ? hostileFrames(r.fork("f")) : hostileControl(r.fork("c"))))
  return {
    note: `interleaving: ${steps.map((s) => s.note).join(", ")}`,
    act: (books) => steps.map((s) => s.act(books)).join("; ")
  }
}

/** One input of generator 5. */
export const streamInput = (r: Prng): StreamInput => {
  const kind = r.weighted<string>([["request", 14], ["good", 9], ["hello", 1], ["channel", 2], ["honest", 24], ["frame", 28], ["control", 15], ["interleaving", 8]])
  const fr = r.fork("act")
  switch (kind) {
    case "request": {
      const method = r.pick(["GET", "GET", "POST", "PUT", "DELETE"])
      const body = method === "GET" || method === "DELETE" ? Buffer.alloc(0) : r.bytes(size(r, 200_000))
      // A client that keeps its connection alive waits for every byte a head declares.
      const keepAlive = r.chance(0.5)
      // Some clients go away in the middle: their streams are reset while the host still sends.
      const abortAfterMs = r.chance(0.15) ? r.int(0, 300) : undefined
      // Some read nothing for a while once the head came: the relay stops granting the host credit.
      const pauseMs = r.chance(0.15) ? r.int(200, 1000) : undefined
      const how = [keepAlive ? "kept alive" : "", abortAfterMs === undefined ? "" : `gone after ${abortAfterMs} ms`, pauseMs === undefined ? "" : `reading after ${pauseMs} ms`]
        .filter((w) => w !== "")
        .join(", ")
      return { _tag: "Request", note: `client ${method} through the evil host (${body.length} B body${how === "" ? "" : `, ${how}`})`, method, body, keepAlive, abortAfterMs, pauseMs }
    }
    case "good": {
      const method = r.chance(0.5) ? "GET" : "POST"
      const n = r.weighted<() => number>([[() => r.int(0, 1000), 3], [() => r.int(1001, 100_000), 2], [() => r.int(100_001, 600_000), 1]])()
      const chunked = r.chance(0.4)
      return { _tag: "Good", note: `client ${method} of ${n} B through the good host${chunked ? " (chunked)" : ""}`, method, size: n, chunked, body: method === "POST" ? r.bytes(n) : Buffer.alloc(0) }
    }
    case "hello": {
      const value = () =>
        r.pick([
          "stream=0, tunnel=0",
          "stream=1, tunnel=1",
          "stream=1024;tunnel=1024",
          `stream=${r.int(0, 2 ** 31)}, tunnel=${r.int(0, 2 ** 31)}`,
          "stream=99999999999, tunnel=1099511627776",
          "stream=-1, tunnel=-5",
          "stream=1e9, tunnel=0x10",
          "tunnel=2048",
          "stream=, tunnel=",
          "",
          ";;;,,,=",
          oddString(r, r.int(1, 30)).replace(/[^\x20-\x7e]/g, "?"),
          `stream=4096, ${"x".repeat(r.int(1000, 8000))}`
        ])
      const header = r.chance(0.2) ? [value(), value()] : value()
      const method = r.chance(0.5) ? "GET" : "POST"
      const n = r.int(0, 100_000)
      return { _tag: "Hello", note: `a good host announcing windows ${JSON.stringify(header).slice(0, 60)}, a ${method} of ${n} B`, header, method, size: n, body: method === "POST" ? r.bytes(n) : Buffer.alloc(0) }
    }
    case "channel":
      return { _tag: "Channel", note: "client WebSocket through the evil host" }
    default: {
      const made = kind === "honest" ? honest(fr) : kind === "frame" ? hostileFrames(fr) : kind === "control" ? hostileControl(fr) : interleaving(fr)
      return { _tag: "Act", ...made }
    }
  }
}

// ---- inputs that found a bug --------------------------------------------------------------------

const head = (stream: number, fields: { readonly length?: number; readonly end: boolean }) =>
  HostToRelayV2Codec.encode({ _tag: "http:response", stream, status: 200, headers: { "x-fuzz-stream": String(stream) }, ...fields })

/**
 * Inputs the fuzz found bugs with, sent at the start of every run (batch 0) so that they stay
 * fixed. Seed 1 found both: a head with `end: true` that declared a length made the relay write
 * `content-length: N` and end the response with no body, so a kept-alive client waited for bytes
 * that never came (until the server's keep-alive timeout); and a body before its head, End before
 * the head, fewer bytes than declared before End and a second head failed their stream without
 * being counted in `relay_limit_hits_total{limit="bad_frame"}`.
 */
export const foundStreamInputs: ReadonlyArray<StreamInput> = [
  {
    _tag: "Targeted",
    note: "found: a head that declares 5 bytes and ends the body (kept-alive client)",
    keepAlive: true,
    act: (books, e) => (books.sendText(head(e.id, { length: 5, end: true })), `stream ${e.id}`)
  },
  {
    _tag: "Targeted",
    note: "found: a body before the head",
    keepAlive: false,
    act: (books, e) => (books.sendFrame(data(e.id, 10)), `stream ${e.id}`)
  },
  {
    _tag: "Targeted",
    note: "found: End before the head",
    keepAlive: true,
    act: (books, e) => (books.sendFrame(StreamFrames.end(e.id)), `stream ${e.id}`)
  },
  {
    _tag: "Targeted",
    note: "found: 3 of 10 declared bytes, then End",
    keepAlive: true,
    act: (books, e) => {
      books.sendText(head(e.id, { length: 10, end: false }))
      books.sendFrame(data(e.id, 3))
      books.sendFrame(StreamFrames.end(e.id))
      return `stream ${e.id}`
    }
  },
  {
    _tag: "Targeted",
    note: "found: a second head",
    keepAlive: false,
    act: (books, e) => {
      books.sendText(head(e.id, { end: false }))
      books.sendFrame(data(e.id, 3))
      books.sendText(head(e.id, { end: false }))
      return `stream ${e.id}`
    }
  }
]
