/**
 * Generator 5's hostile binary frames: truncated headers, unknown kinds, Data for streams that are
 * not there (unknown ids, 0, 2^32 - 1, gone) or before the head, bytes over a stream's or the
 * tunnel's window or beyond the credit known, Window frames of every value and of the wrong size,
 * End twice, before the head, on a WebSocket or with a payload, WebSocket messages on a body
 * stream and body bytes on a WebSocket, frames of 1-3 MB.
 */
import { StreamFrames } from "@effect-relay/protocol"
import { anyId, data, dataSize, type NamedAct, streamId, unknownId } from "./StreamActs.js"
import type { Pick } from "./StreamBooks.js"
import type { Prng } from "./Prng.js"
import { invalidUtf8, oddString } from "./Values.js"

const { FrameKind } = StreamFrames

export const hostileFrames = (r: Prng): NamedAct =>
  r.weighted<() => NamedAct>([
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
