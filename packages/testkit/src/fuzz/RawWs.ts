/**
 * WebSocket frames written by hand (RFC 6455 5.2), so that a fuzz client can send what no
 * library would: reserved bits, unknown opcodes, unmasked client frames, lengths that lie or use
 * a longer form than needed; and a reader of the server's frames that keeps only what a report
 * needs (how many, the close code), never the payloads.
 */

export const Opcode = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const

export interface FrameSpec {
  readonly opcode: number
  readonly payload: Buffer
  readonly fin?: boolean
  /** The three reserved bits (0-7); set without an extension they must fail the connection. */
  readonly rsv?: number
  /** The masking key; `null` sends the frame unmasked (a protocol error from a client). */
  readonly maskKey?: Buffer | null
  /** The length field's form: the shortest that fits (default), or a longer one. */
  readonly lengthForm?: "shortest" | "16" | "64"
  /** A length to announce instead of the payload's: larger leaves the server waiting for the rest. */
  readonly announcedLength?: number | bigint
}

const zeroKey = Buffer.alloc(4)

export const encodeFrame = (spec: FrameSpec): Buffer => {
  const announced = spec.announcedLength ?? spec.payload.length
  const n = typeof announced === "bigint" ? announced : BigInt(announced)
  const form = spec.lengthForm ?? (n < 126n ? "shortest" : n < 65536n ? "16" : "64")
  const mask = spec.maskKey === undefined ? zeroKey : spec.maskKey
  const head: Array<number> = [((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) & 7) << 4 | (spec.opcode & 0x0f)]
  const maskBit = mask === null ? 0 : 0x80
  let length: Buffer
  if (form === "shortest" && n < 126n) {
    head.push(maskBit | Number(n))
    length = Buffer.alloc(0)
  } else if (form === "16" || (form === "shortest" && n < 65536n)) {
    head.push(maskBit | 126)
    length = Buffer.alloc(2)
    length.writeUInt16BE(Number(n & 0xffffn))
  } else {
    head.push(maskBit | 127)
    length = Buffer.alloc(8)
    length.writeBigUInt64BE(BigInt.asUintN(64, n))
  }
  const payload = Buffer.from(spec.payload)
  if (mask !== null) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!
  return Buffer.concat([Buffer.from(head), length, ...(mask === null ? [] : [mask]), payload])
}

/** A close frame's payload: the code (when any) and the reason's bytes. */
export const closePayload = (code: number | undefined, reason: Buffer = Buffer.alloc(0)): Buffer => {
  if (code === undefined) return reason
  const out = Buffer.alloc(2)
  out.writeUInt16BE(code & 0xffff)
  return Buffer.concat([out, reason])
}

/** Counts the server's frames as bytes arrive, keeping the close frame's code. */
export const serverFrames = () => {
  let buffered: Buffer = Buffer.alloc(0)
  /** Payload bytes of the current frame still to skip. */
  let skipping = 0
  let frames = 0
  let closeCode: number | undefined
  let closeFrame = false
  const push = (chunk: Buffer) => {
    if (skipping > 0) {
      const n = Math.min(skipping, chunk.length)
      skipping -= n
      chunk = chunk.subarray(n)
    }
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
    while (buffered.length >= 2 && skipping === 0) {
      const opcode = buffered[0]! & 0x0f
      const short = buffered[1]! & 0x7f
      const headLength = short === 126 ? 4 : short === 127 ? 10 : 2
      if (buffered.length < headLength) return
      const length = short === 126 ? buffered.readUInt16BE(2) : short === 127 ? Number(buffered.readBigUInt64BE(2)) : short
      frames++
      if (opcode === Opcode.close) {
        if (buffered.length < headLength + Math.min(length, 2)) {
          frames--
          return
        }
        closeFrame = true
        closeCode = length >= 2 ? buffered.readUInt16BE(headLength) : undefined
      }
      const available = buffered.length - headLength
      if (available >= length) {
        buffered = buffered.subarray(headLength + length)
      } else {
        skipping = length - available
        buffered = Buffer.alloc(0)
      }
    }
  }
  return {
    push,
    summary: () => ({ frames, closeFrame, closeCode })
  }
}
