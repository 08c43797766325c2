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
 * The hostile acts are in `StreamFrameActs.ts` and `StreamControlActs.ts`; the honest ones, the
 * interleavings, the clients and the inputs that found bugs here. Each act is built when it is
 * sent, from the streams open then (`Books.pick`); what it does to a stream is booked by `Books`,
 * not here.
 */
import { HostToRelayV2Codec, StreamFrames } from "@effect-relay/protocol"
import { data, type NamedAct } from "./StreamActs.js"
import type { Books, StreamEntry } from "./StreamBooks.js"
import { hostileControl } from "./StreamControlActs.js"
import { hostileFrames } from "./StreamFrameActs.js"
import type { Prng } from "./Prng.js"
import { oddString, size } from "./Values.js"

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

const honest = (r: Prng): NamedAct => {
  const status = r.pick([200, 200, 201, 404, 418, 500])
  const bodySize = r.weighted<() => number>([[() => 0, 1], [() => r.int(1, 2000), 5], [() => r.int(2001, 300_000), 3]])()
  const declare = r.chance(0.6)
  const pieces = r.int(1, 4)
  const u = r.next()
  const headOf = (books: Books, e: StreamEntry) => {
    books.head(e, status, bodySize, declare)
    return `head ${status} for stream ${e.id} (${bodySize} B${declare ? " declared" : ""})`
  }
  return r.weighted<() => NamedAct>([
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
const interleaving = (r: Prng): NamedAct => {
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
