import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { hostnameOf, normalisePath, parseHostRoute, reservedLabels, routeOf as routeOnSite, siteOf } from "../src/http/HostRoute.js"

const routeOf = (url: string) => {
  const parsed = parseHostRoute(url)
  if (parsed === undefined || Either.isLeft(parsed)) throw new Error(`not a host route: ${url}`)
  return parsed.right
}

describe("the path a host gets", () => {
  it("dot segments are resolved and never climb above /", () => {
    const cases: Array<[string, string]> = [
      ["/hosts/acme:x/../echo", "/echo"],
      ["/hosts/acme:x/a/../../b", "/b"],
      ["/hosts/acme:x/../../../../etc/passwd", "/etc/passwd"],
      ["/hosts/acme:x/a/./b/.", "/a/b/"],
      ["/hosts/acme:x/a/b/..", "/a/"],
      ["/hosts/acme:x/..", "/"],
      ["/hosts/acme:x", "/"],
      ["/hosts/acme:x/", "/"],
      ["/hosts/acme:x/a/", "/a/"]
    ]
    for (const [url, path] of cases) expect(routeOf(url).path, url).toBe(path)
  })

  it("percent-encoded dots count as dots, in any case and mix", () => {
    const cases: Array<[string, string]> = [
      ["/hosts/acme:x/%2e%2e/echo", "/echo"],
      ["/hosts/acme:x/a/%2E%2E/%2e%2E/b", "/b"],
      ["/hosts/acme:x/a/.%2e/b", "/b"],
      ["/hosts/acme:x/a/%2e./b", "/b"],
      ["/hosts/acme:x/a/%2e/b", "/a/b"],
      // Not dot segments: kept as sent.
      ["/hosts/acme:x/a/%2e%2e%2e/b", "/a/%2e%2e%2e/b"],
      ["/hosts/acme:x/a/..b/c", "/a/..b/c"],
      ["/hosts/acme:x/%252e%252e/b", "/%252e%252e/b"]
    ]
    for (const [url, path] of cases) expect(routeOf(url).path, url).toBe(path)
  })

  it("runs of slashes are one; a backslash is a slash; %2F stays encoded inside its segment", () => {
    const cases: Array<[string, string]> = [
      ["/hosts/acme:x//evil.example/x", "/evil.example/x"],
      ["/hosts/acme:x/a//b///c", "/a/b/c"],
      ["/hosts/acme:x/a\\..\\..\\b", "/b"],
      ["/hosts/acme:x/projects/group%2Fproject/issues", "/projects/group%2Fproject/issues"],
      ["/hosts/acme:x/a/..%2F..%2Fb", "/a/..%2F..%2Fb"]
    ]
    for (const [url, path] of cases) expect(routeOf(url).path, url).toBe(path)
  })

  it("the query is kept as sent (without the token); the host id is not part of the path", () => {
    const route = routeOf("/hosts/acme:x/a/../b?x=../1&token=t&y=%2e%2e")
    expect(route).toMatchObject({ path: "/b", query: "x=../1&y=%2e%2e", queryToken: "t" })
    expect(String(route.hostId)).toBe("acme:x")
    // `..` cannot reach another host: the host id is read before the path is resolved.
    expect(String(routeOf("/hosts/acme:x/../other:y/secret").hostId)).toBe("acme:x")
    expect(routeOf("/hosts/acme:x/../other:y/secret").path).toBe("/other:y/secret")
  })

  it("normalisePath on its own", () => {
    expect(normalisePath("/")).toBe("/")
    expect(normalisePath("//")).toBe("/")
    expect(normalisePath("/./")).toBe("/")
    expect(normalisePath("/a/b/../c/./d")).toBe("/a/c/d")
  })
})

describe("a host's hostname", () => {
  const domain = "relay.example.com"
  const site = (host: string | undefined) => siteOf(host, domain)

  it("{name}--{org}.D is org:name, with or without a port, in any case, with a trailing dot", () => {
    for (const host of ["laptop--acme.relay.example.com", "laptop--acme.relay.example.com:8443", "LapTop--ACME.Relay.Example.COM", "laptop--acme.relay.example.com."]) {
      expect(site(host), host).toEqual({ _tag: "Host", hostId: "acme:laptop" })
    }
    expect(site("my-dev-box--team-7.relay.example.com")).toEqual({ _tag: "Host", hostId: "team-7:my-dev-box" })
    expect(site(`${"a".repeat(30)}--${"b".repeat(31)}.relay.example.com`)).toMatchObject({ _tag: "Host" })
  })

  it("the apex, addresses and names outside the domain are the relay's own; without a public domain every name is", () => {
    for (const host of [undefined, "relay.example.com", "relay.example.com:8080", "127.0.0.1:8080", "[::1]:8080", "effect-relay.fly.dev", "laptop--acme.example.com", "laptop--acme.relay.example.com.evil.net", "xrelay.example.com"]) {
      expect(site(host), String(host)).toEqual({ _tag: "Relay" })
    }
    expect(siteOf("laptop--acme.relay.example.com", undefined)).toEqual({ _tag: "Relay" })
  })

  it("reserved labels and anything but {name}--{org} in lowercase letters, digits and single hyphens: not a host (400)", () => {
    for (const label of reservedLabels) {
      const answer = site(`${label}.relay.example.com`)
      expect(answer._tag === "NotAHost" && answer.error.reserved, label).toBe(true)
    }
    const malformed = [
      "laptop", "laptop-acme", "--acme", "laptop--", "-laptop--acme", "laptop--acme-", "laptop---acme", "lap--top--acme",
      "lap_top--acme", "a.laptop--acme", "xn--bcher-kva", "xn--acme", `${"a".repeat(31)}--${"b".repeat(31)}`
    ]
    for (const label of malformed) {
      const answer = site(`${label}.relay.example.com`)
      expect(answer._tag === "NotAHost" && !answer.error.reserved, label).toBe(true)
      if (answer._tag === "NotAHost") expect(answer.error.message).toContain("{name}--{org}.relay.example.com")
    }
    // A long name is cut in the message.
    const long = site(`${"a".repeat(5000)}.relay.example.com`)
    expect(long._tag === "NotAHost" && long.error.message.length < 400).toBe(true)
  })

  it("hostnameOf is the inverse, for the hostIds that have a hostname", () => {
    for (const id of ["acme:laptop", "team-7:my-dev-box", "a:b"]) {
      const hostname = hostnameOf(id as never, domain)!
      expect(site(hostname), id).toEqual({ _tag: "Host", hostId: id })
    }
    for (const id of ["Acme:laptop", "bcher-kva:xn", "acme:lap_top", "acme:lap.top", "acme:lap--top", "acme:-laptop", `acme:${"a".repeat(60)}`]) {
      expect(hostnameOf(id as never, domain), id).toBeUndefined()
    }
  })

  it("on a host's hostname the whole URL is the host's: the path normalised, the query without the token", () => {
    const host = site("laptop--acme.relay.example.com")
    const route = routeOnSite(host, "/hosts/other:x/../a//b?token=t&x=1")
    expect(route !== undefined && Either.isRight(route) && route.right).toEqual({
      hostId: "acme:laptop",
      via: "hostname",
      path: "/hosts/a/b",
      query: "x=1",
      queryToken: "t",
      fullQuery: "token=t&x=1"
    })
    // On the relay's own names: the path form, or nothing.
    expect(routeOnSite({ _tag: "Relay" }, "/health")).toBeUndefined()
    expect(routeOnSite({ _tag: "Relay" }, "/hosts/acme:x/y")).toMatchObject({ right: { hostId: "acme:x", via: "path", path: "/y" } })
  })
})
