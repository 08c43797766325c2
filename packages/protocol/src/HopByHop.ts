/**
 * Hop-by-hop headers (RFC 9110 7.6.1) describe one connection, not the message: a proxy never
 * forwards them, in either direction. The relay and the host agent both use this one list.
 */

type HeaderValue = string | ReadonlyArray<string> | undefined

const fixed = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade"
])

/** Whether a header (any case) is hop-by-hop by its name alone. */
export const isHopByHop = (name: string): boolean => {
  const lower = name.toLowerCase()
  return fixed.has(lower) || lower.startsWith("proxy-")
}

/** The headers a message's `Connection` header names: hop-by-hop for that message too, so none can be smuggled through. */
export const connectionListed = (headers: Readonly<Record<string, HeaderValue>>): ReadonlySet<string> => {
  let value: HeaderValue
  for (const name in headers) {
    if (name.toLowerCase() === "connection") value = headers[name]
  }
  if (value === undefined) return empty
  const list = typeof value === "string" ? value : value.join(",")
  return new Set(list.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0))
}

const empty: ReadonlySet<string> = new Set()

/**
 * A message's end-to-end headers: names lowercased, hop-by-hop ones and those its `Connection`
 * header lists dropped, and any name in `drop` (lowercase) too.
 */
export const endToEnd = <V extends string | ReadonlyArray<string>>(
  headers: Readonly<Record<string, V | undefined>>,
  drop: ReadonlySet<string> = empty
): Record<string, V> => {
  const listed = connectionListed(headers)
  const out: Record<string, V> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    const lower = name.toLowerCase()
    if (isHopByHop(lower) || listed.has(lower) || drop.has(lower)) continue
    out[lower] = value
  }
  return out
}
