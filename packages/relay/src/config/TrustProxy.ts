/**
 * Which proxies in front of the relay may tell it who the client is (the `TRUST_PROXY` setting).
 * `none`: nobody; the TCP peer is the client. `fly`: Fly's proxy, which names the client in
 * `Fly-Client-IP`. Otherwise a list of addresses and CIDR ranges: a connection from one of them
 * may carry `X-Forwarded-For` / `-Proto` / `-Host`. `ForwardHeaders` applies it per request.
 */
import * as net from "node:net"

export type TrustProxy =
  | { readonly _tag: "None" }
  | { readonly _tag: "Fly" }
  | {
    readonly _tag: "Proxies"
    /** The setting as given, normalised (`10.0.0.0/8, ::1`). */
    readonly text: string
    /** Whether an address (IPv4, IPv6 or IPv4-mapped IPv6) is one of the trusted proxies. */
    readonly trusts: (address: string) => boolean
  }

export const none: TrustProxy = { _tag: "None" }
export const fly: TrustProxy = { _tag: "Fly" }

export const describe = "none, fly, or a comma-separated list of IP addresses and CIDR ranges"

/** Reads the setting's text; `undefined` when it is none of the accepted forms. */
export const parse = (text: string): TrustProxy | undefined => {
  const trimmed = text.trim()
  if (trimmed === "none" || trimmed === "") return none
  if (trimmed === "fly") return fly
  const items = trimmed.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
  const list = new net.BlockList()
  for (const item of items) {
    const slash = item.indexOf("/")
    const address = slash === -1 ? item : item.slice(0, slash)
    const family = net.isIP(address)
    if (family === 0 || address.includes("%")) return undefined
    const type = family === 4 ? "ipv4" : "ipv6"
    if (slash === -1) {
      list.addAddress(address, type)
      continue
    }
    const prefixText = item.slice(slash + 1)
    const prefix = Number(prefixText)
    if (!/^\d{1,3}$/.test(prefixText) || prefix > (family === 4 ? 32 : 128)) return undefined
    list.addSubnet(address, prefix, type)
  }
  return {
    _tag: "Proxies",
    text: items.join(", "),
    trusts: (address) => {
      const plain = plainAddress(address)
      if (plain === undefined) return false
      return list.check(plain, net.isIPv4(plain) ? "ipv4" : "ipv6")
    }
  }
}

/** Like `parse`, for a value already checked by the setting. */
export const parseOrThrow = (text: string): TrustProxy => {
  const parsed = parse(text)
  if (parsed === undefined) throw new Error(`trust-proxy must be ${describe}, got ${JSON.stringify(text)}`)
  return parsed
}

/** How the setting reads back (`--help`, logs). */
export const format = (trust: TrustProxy): string => (trust._tag === "Proxies" ? trust.text : trust._tag === "Fly" ? "fly" : "none")

/**
 * An address as the relay passes it on: IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what a socket bound
 * to `::` reports for an IPv4 peer) as plain IPv4; `[v6]`, `[v6]:port` and `v4:port` (forms some
 * proxies write into `X-Forwarded-For`) without brackets and port. `undefined` when it is not an
 * IP address at all (`unknown`, a host name, garbage).
 */
export const plainAddress = (raw: string): string | undefined => {
  let text = raw.trim()
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text)
  if (bracketed) text = bracketed[1]!
  else if (/^[\d.]+:\d+$/.test(text)) text = text.slice(0, text.indexOf(":"))
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text)
  if (mapped) text = mapped[1]!
  text = text.replace(/%.*$/, "") // an IPv6 zone (`fe80::1%eth0`) names a local interface: not part of the address
  return net.isIP(text) === 0 ? undefined : text
}
