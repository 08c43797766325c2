/** Version 2's streams and their credit, one side at a time, over a wire the test reads and writes. */
import { describe, expect, it } from "vitest"
import { StreamFrames, StreamMux, type Transport } from "../src/index.js"

const { FrameKind } = StreamFrames

/** A transport whose sent frames the test reads and whose socket buffer the test sets. */
const fakeConn = () => {
  const sent: Array<string | Uint8Array> = []
  const drains: Array<() => void> = []
  const state = { buffered: 0, fills: false }
  const conn = {
    unsafeSend: (frame: string | Uint8Array) => {
      sent.push(frame)
      if (state.fills) state.buffered += frame.length
      return true
    },
    bufferedAmount: () => state.buffered,
    onDrain: (f: () => void) => void drains.push(f),
    onClose: () => {}
  } as unknown as Transport.Transport
  const drain = () => {
    state.buffered = 0
    for (const f of drains.splice(0)) f()
  }
  return { conn, sent, state, drain }
}

const setup = (windows = { stream: 8, tunnel: 20 }, peer = { stream: 8, tunnel: 20 }) => {
  const wire = fakeConn()
  const problems: Array<[string, number | undefined]> = []
  const mux = StreamMux.make({
    conn: wire.conn,
    windows,
    peerWindows: peer,
    sendBufferBytes: 1000,
    encodeReset: (stream, reason) => JSON.stringify({ type: "reset", stream, reason }),
    onProblem: (problem, stream) => void problems.push([problem, stream])
  })
  return { ...wire, mux, problems }
}

/** The binary frames sent, read back. */
const frames = (sent: Array<string | Uint8Array>) =>
  sent.filter((f): f is Uint8Array => typeof f !== "string").map((f) => StreamFrames.decode(f) as StreamFrames.StreamFrame)

const sink = () => {
  const got: Array<string> = []
  const dones: Array<() => void> = []
  const resets: Array<string> = []
  let ended = false
  return {
    got,
    dones,
    resets,
    ended: () => ended,
    sink: {
      onData: (chunk: Buffer, done: () => void) => {
        got.push(chunk.toString())
        dones.push(done)
      },
      onEnd: () => {
        ended = true
      },
      onMessage: (data: Buffer, text: boolean, done: () => void) => {
        got.push(`${text ? "text" : "binary"}:${data.toString()}`)
        dones.push(done)
      },
      onReset: (reason: string) => void resets.push(reason)
    }
  }
}

describe("stream frames", () => {
  it("round-trip: data, end, window; a frame that is not one of ours says why", () => {
    const data = StreamFrames.decode(StreamFrames.encode(FrameKind.Data, 7, Buffer.from("abc"))) as StreamFrames.StreamFrame
    expect([data.kind, data.stream, data.payload.toString()]).toEqual([FrameKind.Data, 7, "abc"])
    const window = StreamFrames.decode(StreamFrames.window(0xffff_ffff, 123456)) as StreamFrames.StreamFrame
    expect([window.kind, window.stream, StreamFrames.windowBytes(window)]).toEqual([FrameKind.Window, 0xffff_ffff, 123456])
    expect(StreamFrames.decode(Buffer.from([0, 0, 0]))).toBe("short frame")
    expect(StreamFrames.decode(Buffer.from([9, 0, 0, 0, 1]))).toBe("unknown kind")
    expect(StreamFrames.decode(Buffer.from([2, 0, 0, 0, 1, 0]))).toBe("bad window frame")
    expect(StreamFrames.decode(Buffer.from([1, 0, 0, 0, 1, 0]))).toBe("payload on an end frame")
  })
})

describe("stream mux", () => {
  it("sends a stream's bytes within its credit, and the rest when the peer grants more", () => {
    const { mux, sent } = setup()
    const port = mux.open(1, sink().sink)
    expect(port.write(Buffer.from("0123456789abc"))).toBe(true)
    port.end()
    expect(frames(sent).map((f) => f.payload.toString())).toEqual(["01234567"])
    expect(port.queued()).toBe(5)
    mux.onFrame(StreamFrames.window(1, 3))
    mux.onFrame(StreamFrames.window(1, 10))
    const out = frames(sent)
    expect(out.map((f) => [f.kind, f.payload.toString()])).toEqual([[FrameKind.Data, "01234567"], [FrameKind.Data, "89a"], [FrameKind.Data, "bc"], [FrameKind.End, ""]])
    expect(port.queued()).toBe(0)
  })

  it("the tunnel's credit is shared: a stream waits for it even with its own, and goes on the tunnel's Window", () => {
    const { mux, sent } = setup({ stream: 8, tunnel: 20 }, { stream: 8, tunnel: 10 })
    const a = mux.open(1, sink().sink)
    const b = mux.open(2, sink().sink)
    a.write(Buffer.from("aaaaaaaa"))
    b.write(Buffer.from("bbbbbbbb"))
    expect(frames(sent).map((f) => f.payload.toString())).toEqual(["aaaaaaaa", "bb"])
    mux.onFrame(StreamFrames.window(0, 100))
    expect(frames(sent).map((f) => f.payload.toString())).toEqual(["aaaaaaaa", "bb", "bbbbbb"])
  })

  it("streams with bytes take turns, a piece at a time: a small one does not wait for a large one", () => {
    const { drain, mux, sent, state } = setup({ stream: 1 << 20, tunnel: 1 << 22 }, { stream: 1 << 20, tunnel: 1 << 22 })
    // The socket is full, and each frame sent fills it again: one frame per drain.
    state.buffered = 5000
    state.fills = true
    const a = mux.open(1, sink().sink)
    const b = mux.open(2, sink().sink)
    a.write(Buffer.alloc(3 * StreamFrames.maxDataBytes, 97))
    b.write(Buffer.from("small"))
    b.end()
    for (let i = 0; i < 6; i++) drain()
    expect(frames(sent).map((f) => `${f.stream}:${f.kind}:${f.payload.length}`)).toEqual([
      `1:0:${StreamFrames.maxDataBytes}`,
      "2:0:5",
      `1:0:${StreamFrames.maxDataBytes}`,
      "2:1:0",
      `1:0:${StreamFrames.maxDataBytes}`
    ])
  })

  it("while the tunnel's socket holds more than the send buffer, nothing is sent; its drain sends the rest", () => {
    const { drain, mux, sent, state } = setup({ stream: 100, tunnel: 100 }, { stream: 100, tunnel: 100 })
    state.buffered = 5000
    const port = mux.open(1, sink().sink)
    let drained = false
    expect(port.write(Buffer.from("hello"))).toBe(true)
    port.onDrain(() => {
      drained = true
    })
    expect(frames(sent)).toHaveLength(0)
    drain()
    expect(frames(sent).map((f) => f.payload.toString())).toEqual(["hello"])
    expect(drained).toBe(true)
  })

  it("grants credit back as bytes are done, per stream and for the tunnel", () => {
    const { mux, sent } = setup({ stream: 8, tunnel: 16 })
    const s = sink()
    mux.open(1, s.sink)
    mux.onFrame(StreamFrames.encode(FrameKind.Data, 1, Buffer.from("abcd")))
    expect(s.got).toEqual(["abcd"])
    expect(mux.buffered()).toBe(4)
    expect(frames(sent)).toHaveLength(0)
    s.dones[0]!()
    // 4 done: a quarter of the tunnel window (4) and half of the stream's (>= 2): both granted.
    expect(frames(sent).map((f) => [f.kind, f.stream, StreamFrames.windowBytes(f)])).toEqual([[FrameKind.Window, 0, 4], [FrameKind.Window, 1, 4]])
    expect(mux.buffered()).toBe(0)
  })

  it("bytes beyond a stream's credit reset that stream only, and the tunnel's credit comes back", () => {
    const { mux, problems, sent } = setup({ stream: 8, tunnel: 64 })
    const bad = sink()
    const good = sink()
    mux.open(1, bad.sink)
    mux.open(3, good.sink)
    mux.onFrame(StreamFrames.encode(FrameKind.Data, 1, Buffer.alloc(9)))
    expect(bad.resets).toEqual(["flow control"])
    expect(problems).toEqual([["over the stream's credit", 1]])
    expect(sent.filter((f) => typeof f === "string")).toEqual([JSON.stringify({ type: "reset", stream: 1, reason: "flow control" })])
    mux.onFrame(StreamFrames.encode(FrameKind.Data, 3, Buffer.from("fine")))
    expect(good.got).toEqual(["fine"])
    expect(mux.size()).toBe(1)
    expect(mux.buffered()).toBe(4)
  })

  it("bytes beyond the tunnel's credit reset the stream they are for", () => {
    const { mux, problems } = setup({ stream: 100, tunnel: 10 })
    const s = sink()
    mux.open(1, s.sink)
    mux.onFrame(StreamFrames.encode(FrameKind.Data, 1, Buffer.alloc(11)))
    expect(problems).toEqual([["over the tunnel's credit", 1]])
    expect(s.resets).toEqual(["flow control"])
  })

  it("bytes for a stream that is gone are dropped, their tunnel credit given back; a Window for one is ignored", () => {
    const { mux, problems, sent } = setup({ stream: 8, tunnel: 8 })
    const port = mux.open(1, sink().sink)
    port.reset("client gone")
    for (let i = 0; i < 10; i++) mux.onFrame(StreamFrames.encode(FrameKind.Data, 1, Buffer.alloc(4)))
    mux.onFrame(StreamFrames.window(1, 100))
    // Ten 4-byte frames through an 8-byte tunnel window: the credit came back each time.
    expect(problems).toEqual([])
    expect(frames(sent).filter((f) => f.kind === FrameKind.Window && f.stream === 0).length).toBeGreaterThanOrEqual(10)
    expect(mux.buffered()).toBe(0)
  })

  it("a reset stream gives back what it held; done after it is a no-op", () => {
    const { mux } = setup({ stream: 8, tunnel: 8 })
    const s = sink()
    mux.open(1, s.sink)
    mux.onFrame(StreamFrames.encode(FrameKind.Data, 1, Buffer.alloc(8)))
    expect(mux.buffered()).toBe(8)
    mux.onReset(1, "target failed")
    expect(s.resets).toEqual(["target failed"])
    expect(mux.buffered()).toBe(0)
    s.dones[0]!()
    expect(mux.buffered()).toBe(0)
    // The tunnel has its whole window again: a new stream takes 8 bytes.
    const t = sink()
    mux.open(3, t.sink)
    mux.onFrame(StreamFrames.encode(FrameKind.Data, 3, Buffer.alloc(8)))
    expect(t.got).toHaveLength(1)
  })

  it("a WebSocket message goes whole while credit is above zero (overdrawing it), then waits", () => {
    const { mux, sent } = setup({ stream: 8, tunnel: 100 }, { stream: 8, tunnel: 100 })
    const port = mux.open(1, sink().sink)
    expect(port.message(Buffer.from("0123456789"), true)).toBe(false)
    port.message(Buffer.from("next"), false)
    expect(frames(sent).map((f) => [f.kind, f.payload.toString()])).toEqual([[FrameKind.WsText, "0123456789"]])
    mux.onFrame(StreamFrames.window(1, 3))
    expect(frames(sent)).toHaveLength(2)
    expect(frames(sent)[1]!.kind).toBe(FrameKind.WsBinary)
  })

  it("a peer's message while the stream's credit is used up resets the stream", () => {
    const { mux, problems } = setup({ stream: 8, tunnel: 100 })
    const s = sink()
    mux.open(1, s.sink)
    mux.onFrame(StreamFrames.encode(FrameKind.WsBinary, 1, Buffer.alloc(20)))
    expect(s.got).toHaveLength(1)
    mux.onFrame(StreamFrames.encode(FrameKind.WsBinary, 1, Buffer.alloc(1)))
    expect(s.resets).toEqual(["flow control"])
    expect(problems[0]![0]).toBe("over the stream's credit")
  })

  it("data after End, and frames that cannot be read, are told and dropped", () => {
    const { mux, problems } = setup()
    const s = sink()
    mux.open(1, s.sink)
    mux.onFrame(StreamFrames.end(1))
    expect(s.ended()).toBe(true)
    mux.onFrame(StreamFrames.encode(FrameKind.Data, 1, Buffer.from("late")))
    mux.onFrame(Buffer.from([7, 0]))
    expect(problems).toEqual([["data after end", 1], ["short frame", undefined]])
    expect(s.got).toEqual([])
  })

  it("ids go 1, 2, ... skipping those in use", () => {
    const { mux } = setup()
    expect([mux.nextId(), mux.nextId()]).toEqual([1, 2])
    mux.open(3, sink().sink)
    mux.open(4, sink().sink)
    expect(mux.nextId()).toBe(5)
  })

  it("closing a stream with bytes and its End still queued sends them first, then forgets it", () => {
    const { mux, sent } = setup({ stream: 8, tunnel: 100 }, { stream: 4, tunnel: 100 })
    const port = mux.open(1, sink().sink)
    port.write(Buffer.from("abcdefgh"))
    port.end()
    port.close()
    expect(port.isOpen()).toBe(true)
    mux.onFrame(StreamFrames.window(1, 4))
    expect(frames(sent).map((f) => [f.kind, f.payload.toString()])).toEqual([[FrameKind.Data, "abcd"], [FrameKind.Data, "efgh"], [FrameKind.End, ""]])
    expect(port.isOpen()).toBe(false)
    expect(mux.size()).toBe(0)
  })
})
