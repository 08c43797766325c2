import type { Headers } from "@effect-relay/protocol"

/**
 * Headers that describe one connection, not the message: never forwarded
 * either way. `content-length` is recomputed by whoever writes the body,
 * and `host` is set for the target.
 */
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "content-length",
  "host",
  "expect"
])

export const isHopByHop = (name: string): boolean => {
  const lower = name.toLowerCase()
  return hopByHop.has(lower) || lower.startsWith("proxy-")
}

/** Drops hop-by-hop headers; names lowercased. */
export const endToEnd = (headers: Headers): Record<string, string | ReadonlyArray<string>> => {
  const out: Record<string, string | ReadonlyArray<string>> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (!isHopByHop(name)) out[name.toLowerCase()] = value
  }
  return out
}

/**
 * Headers from node's `rawHeaders` (name, value, name, value...): names
 * lowercased, a header that appears more than once (set-cookie) kept as an
 * array in order, hop-by-hop headers dropped.
 */
export const fromRawHeaders = (raw: ReadonlyArray<string>): Record<string, string | Array<string>> => {
  const out: Record<string, string | Array<string>> = {}
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    if (isHopByHop(name)) continue
    const seen = out[name]
    if (seen === undefined) out[name] = value
    else if (Array.isArray(seen)) seen.push(value)
    else out[name] = [seen, value]
  }
  return out
}
