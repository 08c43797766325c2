/**
 * Binary-safe bodies and frames: bytes that are valid UTF-8 travel as text
 * (they round-trip exactly), anything else as base64.
 */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

export interface EncodedBody {
  readonly body: string
  readonly bodyEncoding?: "base64"
}

export const encodeBytes = (bytes: Uint8Array): EncodedBody => {
  try {
    return { body: strictUtf8.decode(bytes) }
  } catch {
    return { body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"), bodyEncoding: "base64" }
  }
}

export const decodeBytes = (body: string | undefined, encoding: "base64" | undefined): Buffer =>
  body === undefined ? Buffer.alloc(0) : encoding === "base64" ? Buffer.from(body, "base64") : Buffer.from(body, "utf8")
