import { spoofedForwardingHeaders } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import * as TrustProxy from "../src/config/TrustProxy.js"
import { originOf, requestHeadersForHost, requestHeadersForPeer } from "../src/http/ForwardHeaders.js"

const spoofed = spoofedForwardingHeaders

const trust = (text: string) => {
  const parsed = TrustProxy.parse(text)
  if (parsed === undefined) throw new Error(`bad trust ${text}`)
  return parsed
}

const forwardingOf = (headers: Record<string, string | Array<string>>) =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => name.startsWith("x-") || name === "forwarded" || name.endsWith("-ip") || name === "front-end-https"))

describe("TRUST_PROXY", () => {
  it("parses none, fly and lists of addresses and CIDR ranges; refuses anything else", () => {
    expect(trust("none")._tag).toBe("None")
    expect(trust("fly")._tag).toBe("Fly")
    const list = trust(" 10.0.0.0/8, 192.168.1.1 ,fd00::/8,::1")
    expect(TrustProxy.format(list)).toBe("10.0.0.0/8, 192.168.1.1, fd00::/8, ::1")
    if (list._tag !== "Proxies") throw new Error("expected a list")
    expect(["10.1.2.3", "::ffff:10.1.2.3", "192.168.1.1", "fd12::1", "::1", "[::1]:443"].map(list.trusts)).toEqual([true, true, true, true, true, true])
    expect(["11.0.0.1", "192.168.1.2", "2001:db8::1", "unknown", ""].map(list.trusts)).toEqual([false, false, false, false, false])
    for (const bad of ["all", "10.0.0.0/33", "::/129", "10.0.0/8", "example.com", "10.0.0.1/x", "fly,10.0.0.1"]) {
      expect(TrustProxy.parse(bad), bad).toBeUndefined()
    }
  })
})

describe("forwarding headers to the host", () => {
  it("trust none: a client's forwarding headers are replaced by what the relay saw, and address headers dropped", () => {
    const out = requestHeadersForHost({ host: "relay.example", accept: "*/*", ...spoofed }, "203.0.113.9", { trust: TrustProxy.none })
    expect(forwardingOf(out)).toEqual({
      "x-forwarded-for": "203.0.113.9",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "relay.example",
      forwarded: "for=203.0.113.9;host=relay.example;proto=http"
    })
    expect(out.accept).toBe("*/*")
    expect(out.host).toBeUndefined()
  })

  it("IPv6 and IPv4-mapped peers: X-Forwarded-For plain, Forwarded quoted with brackets; a host with a port is quoted", () => {
    const v6 = requestHeadersForHost({ host: "relay.example:8443" }, "2001:db8::1")
    expect(v6["x-forwarded-for"]).toBe("2001:db8::1")
    expect(v6.forwarded).toBe(`for="[2001:db8::1]";host="relay.example:8443";proto=http`)
    const mapped = requestHeadersForHost({ host: "h" }, "::ffff:198.51.100.4")
    expect(mapped["x-forwarded-for"]).toBe("198.51.100.4")
    expect(mapped.forwarded).toBe("for=198.51.100.4;host=h;proto=http")
    const gone = requestHeadersForHost({}, undefined)
    expect(forwardingOf(gone)).toEqual({ "x-forwarded-proto": "http", forwarded: "proto=http" })
  })

  it("a Connection header cannot take the relay's forwarding headers away", () => {
    const out = requestHeadersForHost({ host: "h", connection: "x-forwarded-for, forwarded" }, "203.0.113.9")
    expect(out["x-forwarded-for"]).toBe("203.0.113.9")
    expect(out.forwarded).toBe("for=203.0.113.9;host=h;proto=http")
  })

  it("trust fly: Fly-Client-IP and Fly's X-Forwarded-Proto; without Fly-Client-IP, as none", () => {
    const viaFly = requestHeadersForHost(
      { host: "relay.fly.dev", "fly-client-ip": "2001:db8::7", "x-forwarded-proto": "https", "x-forwarded-for": "6.6.6.6, 2001:db8::7, 66.241.1.1", "x-forwarded-host": "bank.example", "x-real-ip": "6.6.6.6" },
      "fdaa:0:1::3",
      { trust: TrustProxy.fly }
    )
    expect(forwardingOf(viaFly)).toEqual({
      "x-forwarded-for": "2001:db8::7",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "relay.fly.dev",
      forwarded: `for="[2001:db8::7]";host=relay.fly.dev;proto=https`
    })
    const notViaFly = requestHeadersForHost({ host: "h", ...spoofed, "fly-client-ip": "not an address" }, "fdaa:0:1::9", { trust: TrustProxy.fly })
    expect(forwardingOf(notViaFly)).toEqual({
      "x-forwarded-for": "fdaa:0:1::9",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "h",
      forwarded: `for="[fdaa:0:1::9]";host=h;proto=http`
    })
  })

  it("trusted proxies: the rightmost untrusted address is the client; the proxy's proto and host are kept", () => {
    const lb = trust("10.0.0.0/8")
    const headers = { host: "internal:8080", "x-forwarded-for": "6.6.6.6, 203.0.113.9, 10.0.0.7", "x-forwarded-proto": "https", "x-forwarded-host": "app.example" }
    expect(originOf(headers, "10.0.0.2", lb)).toEqual({ for: "203.0.113.9", proto: "https", host: "app.example" })
    expect(requestHeadersForHost(headers, "10.0.0.2", { trust: lb }).forwarded).toBe("for=203.0.113.9;host=app.example;proto=https")
    // The same headers from a peer that is not a trusted proxy: none of them counts.
    expect(originOf(headers, "203.0.113.50", lb)).toEqual({ for: "203.0.113.50", proto: "http", host: "internal:8080" })
    // Every address trusted: the leftmost; an entry that is not an address stops the walk.
    expect(originOf({ "x-forwarded-for": "10.1.1.1, 10.2.2.2" }, "10.0.0.2", lb).for).toBe("10.1.1.1")
    expect(originOf({ "x-forwarded-for": "6.6.6.6, garbage, 10.2.2.2" }, "10.0.0.2", lb).for).toBe("10.2.2.2")
    // Appending proxies: the last value is the trusted proxy's; anything but http/https is ignored.
    expect(originOf({ "x-forwarded-proto": "http, https" }, "10.0.0.2", lb).proto).toBe("https")
    expect(originOf({ "x-forwarded-proto": "gopher" }, "10.0.0.2", lb).proto).toBe("http")
    // No X-Forwarded-For at all: the proxy itself is the client.
    expect(originOf({ host: "h" }, "10.0.0.2", lb)).toEqual({ for: "10.0.0.2", proto: "http", host: "h" })
  })

  it("from a verified peer relay: the first relay's four headers are kept as they are; address headers still dropped", () => {
    const first = { "x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https", "x-forwarded-host": "app.example", forwarded: "for=203.0.113.9;host=app.example;proto=https" }
    const out = requestHeadersForHost({ host: "peer", ...first, "x-real-ip": "6.6.6.6" }, "10.0.0.5", { fromPeer: true })
    expect(forwardingOf(out)).toEqual(first)
  })
})

describe("forwarding headers to a peer relay", () => {
  it("the client's are replaced by this relay's; host and authorization go along (the peer checks the token again)", () => {
    const out = requestHeadersForPeer({ host: "relay.example", authorization: "Bearer t", ...spoofed, connection: "keep-alive" }, "203.0.113.9")
    expect(forwardingOf(out)).toEqual({
      "x-forwarded-for": "203.0.113.9",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "relay.example",
      forwarded: "for=203.0.113.9;host=relay.example;proto=http"
    })
    expect(out.host).toBe("relay.example")
    expect(out.authorization).toBe("Bearer t")
    expect(out.connection).toBeUndefined()
  })

  it("with a trusted proxy in front, the peer gets the client the proxy named", () => {
    const out = requestHeadersForPeer({ host: "h", "x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https" }, "10.0.0.2", trust("10.0.0.0/8"))
    expect(out["x-forwarded-for"]).toBe("203.0.113.9")
    expect(out["x-forwarded-proto"]).toBe("https")
  })
})
