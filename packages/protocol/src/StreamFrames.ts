/**
 * Version 2's binary frames: the bytes of a stream (a request or response body, a WebSocket
 * channel's messages) and the credit that paces them. Each is one binary WebSocket frame:
 *
 *     byte 0      kind (below)
 *     bytes 1-4   stream id, unsigned 32-bit big-endian (0: the tunnel itself, for WINDOW)
 *     bytes 5-    payload
 *
 * Control messages (hello, ping, drain, the heads, reset) stay JSON text frames decoded with
 * `Schema` (`StreamMessages.ts`); nothing in a binary frame is JSON or base64.
 */

export const FrameKind = {
  /** Body bytes of the stream, in order. Counts against the stream's and the tunnel's credit. */
  Data: 0,
  /** The stream's body is complete (no payload). */
  End: 1,
  /** 4-byte unsigned payload: the sender of this frame may be sent that many more bytes (on stream 0: tunnel-wide). */
  Window: 2,
  /** One whole WebSocket text message (UTF-8 payload). Counts against credit like Data. */
  WsText: 3,
  /** One whole WebSocket binary message. Counts against credit like Data. */
  WsBinary: 4
} as const
export type FrameKind = typeof FrameKind[keyof typeof FrameKind]

/** Bytes before the payload. */
export const headerBytes = 5

/** The largest payload of one Data frame: a body goes out in pieces of at most this many bytes. */
export const maxDataBytes = 64 * 1024

/** The largest stream id: ids are unsigned 32-bit, 0 is the tunnel. */
export const maxStreamId = 0xffff_ffff

/** One binary frame, as read. `payload` is a view into the frame's bytes (no copy). */
export interface StreamFrame {
  readonly kind: FrameKind
  readonly stream: number
  readonly payload: Buffer
}

/** A binary frame with `payload` (copied once, after the header). */
export const encode = (kind: FrameKind, stream: number, payload?: Uint8Array): Buffer => {
  const frame = Buffer.allocUnsafe(headerBytes + (payload?.length ?? 0))
  frame[0] = kind
  frame.writeUInt32BE(stream, 1)
  if (payload !== undefined && payload.length > 0) frame.set(payload, headerBytes)
  return frame
}

/** An End frame. */
export const end = (stream: number): Buffer => encode(FrameKind.End, stream)

/** A Window frame granting `bytes` more (at most 2^32 - 1). */
export const window = (stream: number, bytes: number): Buffer => {
  const frame = Buffer.allocUnsafe(headerBytes + 4)
  frame[0] = FrameKind.Window
  frame.writeUInt32BE(stream, 1)
  frame.writeUInt32BE(Math.min(bytes, 0xffff_ffff), headerBytes)
  return frame
}

/** What is wrong with a binary frame that cannot be read. */
export type FrameProblem = "short frame" | "unknown kind" | "bad window frame" | "payload on an end frame"

/** Reads a binary frame's header; a frame that is not one of ours says why. */
export const decode = (bytes: Uint8Array): StreamFrame | FrameProblem => {
  if (bytes.length < headerBytes) return "short frame"
  const frame = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  const kind = frame[0]!
  if (kind > FrameKind.WsBinary) return "unknown kind"
  if (kind === FrameKind.Window && frame.length !== headerBytes + 4) return "bad window frame"
  if (kind === FrameKind.End && frame.length !== headerBytes) return "payload on an end frame"
  return { kind: kind as FrameKind, stream: frame.readUInt32BE(1), payload: frame.subarray(headerBytes) }
}

/** The credit a Window frame grants. */
export const windowBytes = (frame: StreamFrame): number => frame.payload.readUInt32BE(0)
