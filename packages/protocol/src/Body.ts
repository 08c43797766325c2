/**
 * Binary-safe bodies and frames: bytes that are valid UTF-8 travel as text
 * (they round-trip exactly), anything else, and anything over 64 KiB, as base64.
 */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

export interface EncodedBody {
  readonly body: string
  readonly bodyEncoding?: "base64"
}

const base64 = (bytes: Uint8Array): EncodedBody => ({
  body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"),
  bodyEncoding: "base64"
})

/** Above this size a body is sent base64 without being checked for text. */
const largeBody = 64 * 1024

/** Characters JSON has to escape (control characters, quotes, backslashes). */
const needsEscape = /[\u0000-\u001f"\\]/

/**
 * Text travels as text unless escaping it for JSON would make it larger than
 * base64 (a body of NULs grows 6x as `\u0000`): a frame stays within 4/3 of
 * its body.
 */
export const encodeBytes = (bytes: Uint8Array): EncodedBody => {
  // Large bodies go base64 without looking: Node encodes and decodes base64 natively, while
  // checking for valid UTF-8 and for characters JSON must escape costs more per byte than
  // the third more bytes base64 sends.
  if (bytes.length > largeBody) return base64(bytes)
  let text: string
  try {
    text = strictUtf8.decode(bytes)
  } catch {
    return base64(bytes)
  }
  if (!needsEscape.test(text)) return { body: text }
  const escaped = JSON.stringify(text).length - 2
  return escaped > Math.ceil(bytes.length / 3) * 4 ? base64(bytes) : { body: text }
}

export const decodeBytes = (body: string | undefined, encoding: "base64" | undefined): Buffer =>
  body === undefined ? Buffer.alloc(0) : encoding === "base64" ? Buffer.from(body, "base64") : Buffer.from(body, "utf8")
