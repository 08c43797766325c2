/**
 * The headers the agent carries between the relay and the target: hop-by-hop ones never cross
 * (`HopByHop` in the protocol package), and `content-length`, `host` and `expect` are the
 * agent's own to set on each side.
 */
import { HopByHop, type Headers } from "@effect-relay/protocol"

const setHere = new Set(["content-length", "host", "expect"])

/** A message's headers as the agent forwards them; names lowercased. */
export const endToEnd = (headers: Headers): Record<string, string | ReadonlyArray<string>> => HopByHop.endToEnd(headers, setHere)

/**
 * Headers from node's `rawHeaders` (name, value, name, value...): names lowercased, a header that
 * appears more than once (set-cookie) kept as an array in order, then `endToEnd`.
 */
export const fromRawHeaders = (raw: ReadonlyArray<string>): Record<string, string | Array<string>> => {
  const out: Record<string, string | Array<string>> = {}
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    const seen = out[name]
    if (seen === undefined) out[name] = value
    else if (Array.isArray(seen)) seen.push(value)
    else out[name] = [seen, value]
  }
  return HopByHop.endToEnd(out, setHere)
}
