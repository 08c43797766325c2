/**
 * Version 2's streams over one tunnel, with credit-based flow control, the same on both ends.
 *
 * Each side announces how many bytes it will take in before it says "more": per stream and for
 * the whole tunnel (`Windows`). A sender sends Data (or WebSocket message) frames only within
 * both credits; a receiver grants credit back (a Window frame) as the bytes leave it: written to
 * the client's or the target's socket and taken by the OS. So neither end ever holds more than a
 * window of a stream, nor more than the tunnel window of all its streams together, and a slow
 * reader at one end pauses the writer at the other, through both hops.
 *
 * A body's bytes go out in pieces of at most 64 KiB, the streams that have bytes and credit
 * taking turns, a piece each; while the tunnel's socket has more than `sendBufferBytes` queued,
 * no stream sends. A small response never waits behind more than that and one piece per busy
 * stream.
 *
 * WebSocket messages are whole: one may be sent while the stream's credit is above zero, even if
 * it is larger (the credit goes below zero), so a window holds one message of any size.
 *
 * A peer that breaks the rules (bytes beyond its credit, a frame that cannot be read) loses the
 * stream concerned, never the tunnel: the stream is reset both ways, and `onProblem` is told
 * (for a metric and a rate-limited log line). Bytes for a stream that is gone (reset by this side
 * while they were on their way) are dropped, and their tunnel credit given back.
 *
 * Plain callbacks, no fibers: this is the hot path, run on the socket's own callbacks.
 */
import * as StreamFrames from "./StreamFrames.js"
import type { Windows } from "./StreamMessages.js"
import type { Transport } from "./Transport.js"

const { FrameKind } = StreamFrames

/** Where a stream's incoming bytes go. */
export interface StreamSink {
  /**
   * Body bytes, in order. `done` must be called once they have left (the client's or target's
   * socket took them): that is what grants the peer more credit.
   */
  readonly onData: (chunk: Buffer, done: () => void) => void
  /** The body is complete. */
  readonly onEnd: () => void
  /** One WebSocket message; `done` as for `onData`. */
  readonly onMessage?: (data: Buffer, text: boolean, done: () => void) => void
  /** The stream was reset: by the peer (a `reset` message), or here because the peer broke its credit. */
  readonly onReset: (reason: string) => void
}

/** This side's end of one stream. */
export interface StreamPort {
  readonly id: number
  /**
   * Queues body bytes to send (within credit, in pieces). False once more than a piece is
   * queued: the source should pause until `onDrain`.
   */
  readonly write: (chunk: Uint8Array) => boolean
  /** Calls `f` once the queued bytes have gone out (at once if none are queued). Once. */
  readonly onDrain: (f: () => void) => void
  /** Sends End after the queued bytes: this side's body is complete. */
  readonly end: () => void
  /**
   * Sends one WebSocket message now if there is credit, else queues it. False once there is no
   * credit left: the source should pause until `onDrain`.
   */
  readonly message: (data: Uint8Array, text: boolean) => boolean
  /** Bytes queued, not yet sent. */
  readonly queued: () => number
  /** Abandons the stream and tells the peer (`reset`). Idempotent; nothing is delivered after it. */
  readonly reset: (reason: string) => void
  /**
   * Forgets the stream without telling the peer (it is finished both ways), once what is queued
   * has been sent. Idempotent.
   */
  readonly close: () => void
  /** Whether the stream is still open here. */
  readonly isOpen: () => boolean
}

export interface StreamMuxOptions {
  readonly conn: Transport
  /** What this side takes in (announced to the peer). */
  readonly windows: Windows
  /** What the peer takes in: this side's initial credit. */
  readonly peerWindows: Windows
  /** While the tunnel's socket has more than this queued, no stream sends. */
  readonly sendBufferBytes: number
  /** The JSON `reset` message of this side's codec. */
  readonly encodeReset: (stream: number, reason: string) => string
  /** A peer broke a stream's rules (the stream is reset), or sent a frame that cannot be read. */
  readonly onProblem: (problem: string, stream: number | undefined) => void
}

export interface StreamMux {
  /** Registers a stream with where its incoming bytes go. */
  readonly open: (id: number, sink: StreamSink) => StreamPort
  /** The next free id for a stream this side opens (1, 2, ... wrapping past 2^32 - 1, skipping ids in use). */
  readonly nextId: () => number
  /** Handles one binary frame from the peer. */
  readonly onFrame: (frame: Uint8Array) => void
  /** A `reset` from the peer. */
  readonly onReset: (id: number, reason: string | undefined) => void
  /** The peer's windows, when they become known after the mux was made (version 2's hello). */
  readonly setPeerWindows: (windows: Windows) => void
  /** Ends every stream: each sink is told `onReset(reason)`; nothing is sent. */
  readonly closeAll: (reason: string) => void
  readonly size: () => number
  /** Bytes received and not yet taken by their destination, over all streams: this side's buffer. */
  readonly buffered: () => number
}

interface Stream {
  readonly id: number
  readonly sink: StreamSink
  open: boolean
  /** Credit the peer granted this stream: bytes (or message bytes) this side may still send. */
  sendCredit: number
  /** Credit this side granted: bytes the peer may still send on this stream. */
  recvAllowed: number
  /** Bytes received and handed to the sink, not yet done. */
  unconsumed: number
  /** Bytes done since the last grant. */
  consumedSinceGrant: number
  /** Whether the peer's body is complete (no more grants are useful). */
  inboundEnded: boolean
  /** Outgoing pieces waiting for credit, in order; an End is `undefined`, a message has `text`. */
  readonly queue: Array<Outgoing>
  queuedBytes: number
  /** Waiting to be told the queue went out. */
  drainWaiters: Array<() => void> | undefined
  /** In the ready ring (it has something to send and may have credit). */
  ready: boolean
  /** Closed by this side with frames still queued: forgotten once they are sent. */
  closeWhenSent: boolean
}

type Outgoing =
  | { readonly kind: "data"; bytes: Uint8Array }
  | { readonly kind: "message"; readonly bytes: Uint8Array; readonly text: boolean }
  | { readonly kind: "end" }

/** Above this many queued bytes a writer is told to pause. */
const writeHighWater = StreamFrames.maxDataBytes

export const make = (options: StreamMuxOptions): StreamMux => {
  const { conn } = options
  const windows = options.windows
  let peerWindows = options.peerWindows
  const streams = new Map<number, Stream>()
  /** Credit the peer granted the whole tunnel. */
  let sendCredit = peerWindows.tunnel
  /** Credit this side granted the whole tunnel. */
  let recvAllowed = windows.tunnel
  let consumedSinceGrant = 0
  let buffered = 0
  let lastId = 0
  /** Streams with something to send, taking turns. */
  const ring: Array<Stream> = []
  let waitingForSocket = false
  let pumping = false
  /** The tunnel is gone: nothing more is sent. */
  let closed = false
  conn.onClose(() => {
    closed = true
  })

  // ---- sending -------------------------------------------------------------------------------

  const socketFull = () => conn.bufferedAmount() > options.sendBufferBytes

  const markReady = (s: Stream) => {
    if (s.ready || !s.open || s.queue.length === 0) return
    s.ready = true
    ring.push(s)
  }

  /** Sends the head of `s`'s queue, or a piece of it. */
  const sendOne = (s: Stream) => {
    const next = s.queue[0]!
    switch (next.kind) {
      case "end":
        s.queue.shift()
        conn.unsafeSend(StreamFrames.end(s.id))
        return
      case "message": {
        s.queue.shift()
        const n = next.bytes.length
        s.queuedBytes -= n
        s.sendCredit -= Math.max(n, 1)
        sendCredit -= Math.max(n, 1)
        conn.unsafeSend(StreamFrames.encode(next.text ? FrameKind.WsText : FrameKind.WsBinary, s.id, next.bytes))
        return
      }
      case "data": {
        const n = Math.min(next.bytes.length, StreamFrames.maxDataBytes, s.sendCredit, sendCredit)
        const piece = n === next.bytes.length ? next.bytes : next.bytes.subarray(0, n)
        if (n === next.bytes.length) s.queue.shift()
        else next.bytes = next.bytes.subarray(n)
        s.queuedBytes -= n
        s.sendCredit -= n
        sendCredit -= n
        conn.unsafeSend(StreamFrames.encode(FrameKind.Data, s.id, piece))
      }
    }
  }

  const notifyDrained = (s: Stream) => {
    if (s.queuedBytes > 0 || s.drainWaiters === undefined) return
    const waiters = s.drainWaiters
    s.drainWaiters = undefined
    for (const f of waiters) f()
  }

  /**
   * Sends what credit and the socket allow, the ready streams taking turns a piece at a time. A
   * stream out of credit leaves the ring until its Window comes; with no tunnel credit, every
   * stream waits for the tunnel's Window.
   */
  const pump = () => {
    // A send can come back into here (a peer in memory answers with a Window at once): the loop
    // that is running picks up whatever changed.
    if (pumping) return
    pumping = true
    try {
      pumpLoop()
    } finally {
      pumping = false
    }
  }
  const pumpLoop = () => {
    while (ring.length > 0 && !closed) {
      if (socketFull()) {
        if (!waitingForSocket) {
          waitingForSocket = true
          conn.onDrain(() => {
            waitingForSocket = false
            pump()
          })
        }
        return
      }
      const s = ring[0]!
      const next = s.queue[0]
      if (!s.open || next === undefined) {
        ring.shift()
        s.ready = false
        continue
      }
      if (next.kind !== "end") {
        if (s.sendCredit <= 0) {
          ring.shift()
          s.ready = false
          continue
        }
        if (sendCredit <= 0) return
      }
      ring.shift()
      sendOne(s)
      if (s.queue.length > 0) ring.push(s)
      else {
        s.ready = false
        if (s.closeWhenSent) forget(s)
      }
      notifyDrained(s)
    }
  }

  // ---- receiving -----------------------------------------------------------------------------

  /** `bytes` left this side (or were dropped): the peer may send that many more on the tunnel. */
  const consumedOnTunnel = (bytes: number) => {
    buffered -= bytes
    consumedSinceGrant += bytes
    if (consumedSinceGrant >= windows.tunnel / 4) {
      recvAllowed += consumedSinceGrant
      conn.unsafeSend(StreamFrames.window(0, consumedSinceGrant))
      consumedSinceGrant = 0
    }
  }

  const consumedOnStream = (s: Stream, bytes: number) => {
    s.unconsumed -= bytes
    if (s.inboundEnded || !s.open) return
    s.consumedSinceGrant += bytes
    if (s.consumedSinceGrant >= windows.stream / 4) {
      s.recvAllowed += s.consumedSinceGrant
      conn.unsafeSend(StreamFrames.window(s.id, s.consumedSinceGrant))
      s.consumedSinceGrant = 0
    }
  }

  /** Forgets a stream: its queue is dropped, what it held is given back to the tunnel's credit. */
  const forget = (s: Stream) => {
    if (!s.open) return false
    s.open = false
    streams.delete(s.id)
    s.queue.length = 0
    s.queuedBytes = 0
    if (s.unconsumed > 0) {
      const held = s.unconsumed
      s.unconsumed = 0
      consumedOnTunnel(held)
    }
    const waiters = s.drainWaiters
    s.drainWaiters = undefined
    for (const f of waiters ?? []) f()
    return true
  }

  const resetHere = (s: Stream, reason: string) => {
    if (!forget(s)) return
    conn.unsafeSend(options.encodeReset(s.id, reason))
    s.sink.onReset(reason)
  }

  const onData = (frame: StreamFrames.StreamFrame) => {
    const n = frame.payload.length
    const message = frame.kind !== FrameKind.Data
    // Messages may overdraw (a whole message goes while credit is above zero); bytes may not.
    if (message ? recvAllowed <= 0 : n > recvAllowed) {
      const s = streams.get(frame.stream)
      options.onProblem("over the tunnel's credit", frame.stream)
      if (s !== undefined) resetHere(s, "flow control")
      return
    }
    recvAllowed -= Math.max(n, message ? 1 : 0)
    buffered += Math.max(n, message ? 1 : 0)
    const s = streams.get(frame.stream)
    if (s === undefined || s.inboundEnded) {
      // A stream this side already let go (its reset crossed these bytes), or one never opened.
      if (s !== undefined) options.onProblem("data after end", frame.stream)
      consumedOnTunnel(Math.max(n, message ? 1 : 0))
      return
    }
    if (message ? s.recvAllowed <= 0 || s.sink.onMessage === undefined : n > s.recvAllowed) {
      consumedOnTunnel(Math.max(n, message ? 1 : 0))
      options.onProblem(s.sink.onMessage === undefined && message ? "message on a body stream" : "over the stream's credit", s.id)
      return resetHere(s, "flow control")
    }
    const cost = Math.max(n, message ? 1 : 0)
    s.recvAllowed -= cost
    s.unconsumed += cost
    let called = false
    const done = () => {
      if (called) return
      called = true
      if (!s.open) return
      consumedOnTunnel(cost)
      consumedOnStream(s, cost)
    }
    if (message) s.sink.onMessage!(frame.payload, frame.kind === FrameKind.WsText, done)
    else s.sink.onData(frame.payload, done)
  }

  const onFrame = (bytes: Uint8Array) => {
    const frame = StreamFrames.decode(bytes)
    if (typeof frame === "string") return options.onProblem(frame, undefined)
    switch (frame.kind) {
      case FrameKind.Data:
      case FrameKind.WsText:
      case FrameKind.WsBinary:
        return onData(frame)
      case FrameKind.End: {
        const s = streams.get(frame.stream)
        if (s === undefined) return
        if (s.inboundEnded) return options.onProblem("end after end", s.id)
        s.inboundEnded = true
        return s.sink.onEnd()
      }
      case FrameKind.Window: {
        const grant = StreamFrames.windowBytes(frame)
        if (frame.stream === 0) {
          sendCredit = Math.min(sendCredit + grant, 0x7fff_ffff)
          // Every stream waiting for tunnel credit may go now.
          return pump()
        }
        const s = streams.get(frame.stream)
        if (s === undefined) return
        s.sendCredit = Math.min(s.sendCredit + grant, 0x7fff_ffff)
        markReady(s)
        return pump()
      }
    }
  }

  // ---- streams -------------------------------------------------------------------------------

  const open = (id: number, sink: StreamSink): StreamPort => {
    const s: Stream = {
      id,
      sink,
      open: true,
      sendCredit: peerWindows.stream,
      recvAllowed: windows.stream,
      unconsumed: 0,
      consumedSinceGrant: 0,
      inboundEnded: false,
      queue: [],
      queuedBytes: 0,
      drainWaiters: undefined,
      ready: false,
      closeWhenSent: false
    }
    streams.get(id)?.sink.onReset("stream id reused")
    streams.set(id, s)
    const enqueue = (item: Outgoing, bytes: number) => {
      if (!s.open) return
      s.queue.push(item)
      s.queuedBytes += bytes
      markReady(s)
      pump()
    }
    return {
      id,
      write: (chunk) => {
        if (chunk.length > 0) enqueue({ kind: "data", bytes: chunk }, chunk.length)
        return s.queuedBytes <= writeHighWater
      },
      onDrain: (f) => {
        if (!s.open || s.queuedBytes === 0) return f()
        ;(s.drainWaiters ??= []).push(f)
      },
      end: () => enqueue({ kind: "end" }, 0),
      message: (data, text) => {
        enqueue({ kind: "message", bytes: data, text }, data.length)
        return s.open && s.sendCredit > 0 && s.queuedBytes <= writeHighWater
      },
      queued: () => s.queuedBytes,
      reset: (reason) => {
        if (forget(s)) conn.unsafeSend(options.encodeReset(s.id, reason))
      },
      close: () => {
        // What is queued (the last bytes, the End) still goes; then the stream is forgotten.
        if (s.open && s.queue.length > 0) s.closeWhenSent = true
        else forget(s)
      },
      isOpen: () => s.open
    }
  }

  return {
    open,
    nextId: () => {
      for (;;) {
        lastId = lastId >= StreamFrames.maxStreamId ? 1 : lastId + 1
        if (!streams.has(lastId)) return lastId
      }
    },
    onFrame,
    onReset: (id, reason) => {
      const s = streams.get(id)
      if (s === undefined || !forget(s)) return
      s.sink.onReset(reason ?? "reset by peer")
    },
    setPeerWindows: (next) => {
      sendCredit += next.tunnel - peerWindows.tunnel
      for (const s of streams.values()) s.sendCredit += next.stream - peerWindows.stream
      peerWindows = next
      pump()
    },
    closeAll: (reason) => {
      for (const s of [...streams.values()]) {
        if (forget(s)) s.sink.onReset(reason)
      }
      ring.length = 0
    },
    size: () => streams.size,
    buffered: () => buffered
  }
}
