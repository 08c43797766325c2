import { Data, Deferred, Effect, Exit, FiberId, Mailbox, Option, Scope, Stream } from "effect"
import type { Duplex } from "node:stream"
import WebSocket from "ws"
import { isSendableCloseCode } from "./CloseCodes.js"

/**
 * A message-framed, full-duplex connection: the one shape the relay and the
 * host agent use for tunnels and for client/target WebSocket channels. The
 * `ws` library is wrapped here and only here; an in-memory pair with the same
 * shape lets tests drive a tunnel under `TestClock`.
 */
export interface Transport {
  /**
   * Frames from the peer, in order; ends when the connection closes. A transport is read either
   * through this stream or through `onMessage`, not both.
   */
  readonly messages: Stream.Stream<string | Uint8Array>
  /**
   * Hands every frame to `handler` as it arrives, on the socket's own callback (frames that
   * arrived before are handed over first). For a tunnel's hot path, where a fiber wake-up per
   * frame costs more than handling the frame; `handler` must not block or throw. The end of the
   * frames is `closed`.
   */
  readonly onMessage: (handler: (frame: string | Uint8Array) => void) => void
  /** Sends one frame; fails with `TransportClosed` once the connection is closing or closed. */
  readonly send: (data: string | Uint8Array) => Effect.Effect<void, TransportClosed>
  /** `send` for callback code on the hot path: sends now, false once the connection is closing or closed. */
  readonly unsafeSend: (data: string | Uint8Array) => boolean
  /**
   * Starts the close handshake with this code (1005 closes without a code,
   * 1006 drops the connection without a handshake). Never fails; closing twice is a no-op.
   */
  readonly close: (code: number, reason?: string) => Effect.Effect<void>
  /** Completes with the code and reason the connection ended with. */
  readonly closed: Effect.Effect<CloseInfo>
  /**
   * Calls `f` once the connection has ended (at once if it already has), on the socket's own
   * callback: for code that must react to the end without keeping a fiber waiting for it.
   */
  readonly onClose: (f: (info: CloseInfo) => void) => void
  /** The close info, if the connection has ended. */
  readonly closeInfo: Effect.Effect<Option.Option<CloseInfo>>
  /** Bytes queued for sending and not yet handed to the OS. */
  readonly bufferedAmount: () => number
  /**
   * Stops reading from the peer (TCP backpressure reaches it); frames already read may still
   * arrive. `resume` reads again. Both are idempotent.
   */
  readonly pause: () => void
  readonly resume: () => void
  /** Calls `f` once the bytes queued for sending have gone out to the OS (at once if none are queued), or the connection ends. */
  readonly onDrain: (f: () => void) => void
  /** The subprotocol agreed on the upgrade (`Sec-WebSocket-Protocol`), "" when none. */
  readonly protocol: string
}

export interface CloseInfo {
  readonly code: number
  readonly reason: string
}

export class TransportClosed extends Data.TaggedError("TransportClosed")<{
  readonly code?: number
}> {
  get message() {
    return "connection is closed"
  }
}

export class ConnectError extends Data.TaggedError("ConnectError")<{
  readonly url: string
  readonly cause: unknown
  /** The HTTP status when the server answered the upgrade with a plain response. */
  readonly status?: number
}> {
  get message() {
    const detail = this.status !== undefined
      ? `HTTP ${this.status}`
      : this.cause instanceof Error
      ? this.cause.message
      : String(this.cause)
    return `cannot connect to ${this.url}: ${detail}`
  }
}

const toBytes = (data: WebSocket.RawData): Uint8Array =>
  Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data

/** The TCP socket under a `ws` connection (ws keeps it in `_socket`; pinned ws 8). */
const socketOf = (ws: WebSocket): Duplex | undefined => (ws as unknown as { _socket?: Duplex })._socket ?? undefined

/** The close info, once the connection has ended. */
const pollClose = (closed: Deferred.Deferred<CloseInfo>): Effect.Effect<Option.Option<CloseInfo>> =>
  Deferred.poll(closed).pipe(Effect.flatMap(Option.match({ onNone: () => Effect.succeedNone, onSome: Effect.asSome })))

type Frame = string | Uint8Array

/**
 * Where a transport's incoming frames go: held until the reader chooses, then either into a
 * Mailbox read as a Stream, or straight to a callback.
 */
interface Inbox {
  readonly push: (frame: Frame) => void
  readonly end: () => void
  readonly stream: Stream.Stream<Frame>
  readonly onMessage: (handler: (frame: Frame) => void) => void
}

/** Frames an inbox holds for a reader that has not taken them before it stops reading from the peer. */
const inboxHighWater = 256

/**
 * Backpressure for an inbox: `pause` stops reading from the peer, `resume` reads again. Set once
 * the socket exists (an inbox is made before it).
 */
interface Pressure {
  pause: () => void
  resume: () => void
}

const makeInbox = (): Inbox & { readonly pressure: Pressure } => {
  // Made when a stream reader first asks: a transport read through `onMessage` never needs one.
  let mailbox: Mailbox.Mailbox<Frame> | undefined
  let held: Array<Frame> | undefined = []
  let ended = false
  let handler: ((frame: Frame) => void) | undefined
  let streaming = false
  let paused = false
  const pressure: Pressure = { pause: () => {}, resume: () => {} }
  /** Frames waiting for the reader: over the high-water mark, the peer is not read until they are taken. */
  const waiting = () => held?.length ?? mailbox?.unsafeSize().pipe(Option.getOrElse(() => 0)) ?? 0
  const checkFull = () => {
    if (!paused && waiting() >= inboxHighWater) {
      paused = true
      pressure.pause()
    }
  }
  const checkTaken = () => {
    if (paused && waiting() < inboxHighWater / 4) {
      paused = false
      pressure.resume()
    }
  }
  const deliver = (frame: Frame) => {
    try {
      handler!(frame)
    } catch {
      // The handler's own errors are its business; one must not stop the frames after it.
    }
  }
  const streamOf = (m: Mailbox.Mailbox<Frame>) => Stream.tap(Mailbox.toStream(m), () => Effect.sync(checkTaken))
  return {
    pressure,
    push: (frame) => {
      if (handler !== undefined) return deliver(frame)
      if (streaming) mailbox!.unsafeOffer(frame)
      else held?.push(frame)
      checkFull()
    },
    end: () => {
      ended = true
      if (streaming) mailbox!.unsafeDone(Exit.void)
    },
    stream: Stream.unwrap(Effect.suspend(() => {
      if (handler !== undefined) return Effect.dieMessage("this transport is read through onMessage")
      if (mailbox !== undefined) return Effect.succeed(streamOf(mailbox))
      return Effect.map(Mailbox.make<Frame>(), (made) => {
        if (mailbox === undefined) {
          mailbox = made
          streaming = true
          if (held !== undefined) made.unsafeOfferAll(held)
          held = undefined
          if (ended) made.unsafeDone(Exit.void)
        }
        return streamOf(mailbox)
      })
    })),
    onMessage: (next) => {
      if (streaming || handler !== undefined) throw new Error("this transport already has a reader")
      handler = next
      const early = held ?? []
      held = undefined
      for (const frame of early) deliver(frame)
      checkTaken()
    }
  }
}

/** The end of a connection: a Deferred for fibers, and callbacks for `onClose`. */
interface Ending {
  readonly deferred: Deferred.Deferred<CloseInfo>
  readonly finish: (info: CloseInfo) => void
  readonly onClose: (f: (info: CloseInfo) => void) => void
}

const makeEnding = (deferred: Deferred.Deferred<CloseInfo>): Ending => {
  let info: CloseInfo | undefined
  let callbacks: Array<(info: CloseInfo) => void> | undefined
  const call = (f: (info: CloseInfo) => void, end: CloseInfo) => {
    try {
      f(end)
    } catch {
      // One callback's error must not keep the others from running.
    }
  }
  return {
    deferred,
    finish: (end) => {
      if (info !== undefined) return
      info = end
      Deferred.unsafeDone(deferred, Exit.succeed(end))
      const waiting = callbacks ?? []
      callbacks = undefined
      for (const f of waiting) call(f, end)
    },
    onClose: (f) => {
      if (info !== undefined) call(f, info)
      else (callbacks ??= []).push(f)
    }
  }
}

const makeState = Effect.map(Deferred.make<CloseInfo>(), (deferred) => [makeInbox(), makeEnding(deferred)] as const)

type InboxWithPressure = ReturnType<typeof makeInbox>

/**
 * Puts the transport's listeners on a `ws` socket at once, so no frame that
 * arrives between the upgrade and the first read is lost.
 */
const attach = (
  ws: WebSocket,
  inbox: InboxWithPressure,
  ending: Ending
): Transport => {
  const closed = ending.deferred
  const finish = (info: CloseInfo) => {
    inbox.end()
    ending.finish(info)
  }
  // Once this side has started closing, what the peer still sends is dropped, never queued.
  let closing = false
  ws.on("message", (data, isBinary) => {
    if (closing) return
    inbox.push(isBinary ? toBytes(data) : toBytes(data).toString())
  })
  // `error` is always followed by `close`; the listener keeps an unhandled error event from crashing the process.
  ws.on("error", () => {})
  ws.on("close", (code, reason) => finish({ code, reason: reason.toString() }))
  if (ws.readyState === WebSocket.CLOSED) finish({ code: 1006, reason: "" })

  // Frames sent while the event loop handles one round of I/O go out in one write: the socket
  // is corked at the first send and uncorked once that round is over (setImmediate runs right
  // after it). Under load that is one syscall for many frames; alone, a frame waits for nothing.
  let corked = false
  const uncork = () => {
    corked = false
    socketOf(ws)?.uncork()
  }
  const unsafeSend = (data: string | Uint8Array) => {
    if (ws.readyState !== WebSocket.OPEN) return false
    try {
      if (!corked) {
        const socket = socketOf(ws)
        if (socket !== undefined) {
          corked = true
          socket.cork()
          setImmediate(uncork)
        }
      }
      ws.send(data)
      return true
    } catch {
      return false
    }
  }
  const send = (data: string | Uint8Array) =>
    Effect.suspend(() => unsafeSend(data) ? Effect.void : Effect.fail(new TransportClosed({})))

  // The reader's pauses and the inbox's are counted apart: either one keeps the socket paused.
  let readerPaused = false
  let inboxPaused = false
  const applyPause = () => {
    if (readerPaused || inboxPaused) {
      if (ws.readyState === WebSocket.OPEN && !ws.isPaused) ws.pause()
    } else if (ws.isPaused) ws.resume()
  }
  inbox.pressure.pause = () => {
    inboxPaused = true
    applyPause()
  }
  inbox.pressure.resume = () => {
    inboxPaused = false
    applyPause()
  }

  const close = (code: number, reason?: string) =>
    Effect.sync(() => {
      closing = true
      // Read again, so the peer's answer to the close frame is seen: what else it sends is dropped.
      readerPaused = false
      inboxPaused = false
      applyPause()
      // Frames still corked go out now, before the close frame: a process that exits right
      // after closing (the end of a drain) would otherwise never send them.
      if (corked) uncork()
      if (ws.readyState === WebSocket.CLOSED || ws.readyState === WebSocket.CLOSING) return
      if (ws.readyState === WebSocket.CONNECTING || code === 1006) return ws.terminate()
      if (code === 1005 || !isSendableCloseCode(code)) return ws.close()
      try {
        ws.close(code, reason === undefined ? undefined : truncateReason(reason))
      } catch {
        ws.close(code)
      }
    })

  return {
    get protocol() {
      return ws.protocol
    },
    messages: inbox.stream,
    onMessage: inbox.onMessage,
    send,
    unsafeSend,
    close,
    closed: Deferred.await(closed),
    onClose: ending.onClose,
    closeInfo: pollClose(closed),
    bufferedAmount: () => ws.bufferedAmount,
    pause: () => {
      readerPaused = true
      applyPause()
    },
    resume: () => {
      readerPaused = false
      applyPause()
    },
    onDrain: (f) => {
      const socket = socketOf(ws)
      if (socket === undefined || ws.bufferedAmount === 0 || ws.readyState !== WebSocket.OPEN) return f()
      let called = false
      const once = () => {
        if (called) return
        called = true
        socket.off("drain", once)
        socket.off("close", once)
        f()
      }
      socket.on("drain", once)
      socket.on("close", once)
    }
  }
}

/** Wraps a `ws` socket that the caller owns (for example one from a server upgrade). */
export const fromWebSocket = (ws: WebSocket): Effect.Effect<Transport> =>
  Effect.map(makeState, ([inbox, closed]) => attach(ws, inbox, closed))

/**
 * `fromWebSocket` at once, from a callback: for a socket `ws` has just handed over, whose
 * listeners must be on before the next tick (frames that came with the upgrade are parsed then,
 * and an `error` event with no listener would end the process).
 */
export const unsafeFromWebSocket = (ws: WebSocket): Transport => attach(ws, makeInbox(), makeEnding(Deferred.unsafeMake(FiberId.none)))

export interface ConnectOptions {
  readonly headers?: Record<string, string>
  /** Subprotocols to offer (`Sec-WebSocket-Protocol`). */
  readonly protocols?: ReadonlyArray<string>
  /** How long to wait for the upgrade to complete. */
  readonly timeoutMs?: number
  /** Largest frame accepted from the peer, in bytes. */
  readonly maxPayload?: number
  /**
   * Send frames with an all-zero masking key, which `ws` skips on both ends (default: random
   * keys). Masking protects proxies from payloads a browser script chose; a program of our own
   * talking to our relay has no such script, and masking every byte of a 1 MiB body in
   * JavaScript costs more than the rest of its trip.
   */
  readonly zeroMask?: boolean
}

/**
 * Dials a WebSocket server. The connection lives as long as the scope: closing
 * the scope closes it (1000 unless it was already closed with another code).
 */
export const connect = (url: string, options: ConnectOptions = {}): Effect.Effect<Transport, ConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const [inbox, closed] = yield* makeState
    const [, transport] = yield* Effect.acquireRelease(
      Effect.async<readonly [WebSocket, Transport], ConnectError>((resume) => {
        const ws = new WebSocket(url, [...(options.protocols ?? [])], {
          headers: options.headers,
          handshakeTimeout: options.timeoutMs ?? 20_000,
          maxPayload: options.maxPayload ?? 64 * 1024 * 1024,
          perMessageDeflate: false,
          ...(options.zeroMask ? { generateMask: (mask: Buffer) => void mask.fill(0) } : {})
        })
        const transport = attach(ws, inbox, closed)
        let settled = false
        const fail = (cause: unknown, status?: number) => {
          if (settled) return
          settled = true
          ws.terminate()
          resume(Effect.fail(new ConnectError({ url: redact(url), cause, ...(status !== undefined ? { status } : {}) })))
        }
        ws.once("open", () => {
          if (settled) return
          settled = true
          resume(Effect.succeed([ws, transport] as const))
        })
        ws.once("unexpected-response", (_req, res) => {
          res.resume()
          fail(new Error(`HTTP ${res.statusCode}`), res.statusCode)
        })
        ws.once("error", (error) => fail(error))
        return Effect.sync(() => {
          settled = true
          ws.terminate()
        })
      }),
      ([ws]) =>
        Effect.sync(() => {
          if (ws.readyState === WebSocket.OPEN) ws.close(1000)
          else if (ws.readyState === WebSocket.CONNECTING) ws.terminate()
        })
    )
    return transport
  })

/** Drops a `token` query parameter and any user:password from a URL before it is logged or shown. */
export const redact = (url: string): string =>
  url.replace(/([?&]token=)[^&]*/g, "$1<redacted>").replace(/^([a-z]+:\/\/)[^/@]*@/i, "$1<redacted>@")

/** A close reason may carry at most 123 bytes of UTF-8: cut on a character boundary. */
export const truncateReason = (reason: string): string => {
  if (Buffer.byteLength(reason) <= 123) return reason
  let out = ""
  for (const char of reason) {
    if (Buffer.byteLength(out + char) > 123) break
    out += char
  }
  return out
}

/**
 * Two transports wired to each other in memory: what one sends, the other
 * receives. For tests of tunnel logic under `TestClock`.
 */
export const memoryPair: Effect.Effect<readonly [Transport, Transport]> = Effect.suspend(() => memoryPairSpeaking(""))

/** `memoryPair` whose transports say they agreed on `protocol`. */
export const memoryPairSpeaking = (protocol: string): Effect.Effect<readonly [Transport, Transport]> => Effect.gen(function*() {
  const [inA, endA] = yield* makeState
  const [inB, endB] = yield* makeState
  let ended = false
  const end = (info: CloseInfo) =>
    Effect.sync(() => {
      if (ended) return
      ended = true
      inA.end()
      inB.end()
      endA.finish(info)
      endB.finish(info)
    })
  const side = (inbox: Inbox, ending: Ending, peer: Inbox): Transport => {
    const unsafeSend = (data: Frame) => {
      if (ended) return false
      peer.push(data)
      return true
    }
    return {
      messages: inbox.stream,
      onMessage: inbox.onMessage,
      send: (data) => Effect.suspend(() => unsafeSend(data) ? Effect.void : Effect.fail(new TransportClosed({}))),
      unsafeSend,
      close: (code, reason) => end({ code, reason: reason ?? "" }),
      closed: Deferred.await(ending.deferred),
      onClose: ending.onClose,
      closeInfo: pollClose(ending.deferred),
      bufferedAmount: () => 0,
      pause: () => {},
      resume: () => {},
      onDrain: (f) => f(),
      protocol
    }
  }
  return [side(inA, endA, inB), side(inB, endB, inA)] as const
})
