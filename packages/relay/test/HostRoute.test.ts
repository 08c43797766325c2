import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { normalisePath, parseHostRoute } from "../src/http/HostRoute.js"

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
