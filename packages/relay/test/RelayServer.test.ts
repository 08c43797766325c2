import { HttpResponse } from "@effect-relay/protocol"
import { fakeHost, okResponse, openSocket, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as net from "node:net"
import { eventually, get, startRelay } from "./support.js"

const hostId = "acme:laptop"

/** A relay with one fake host registered that answers every request with 200 "ok". */
const withHost = (overrides = {}) =>
  Effect.gen(function*() {
    const relay = yield* startRelay(overrides)
    const t = yield* token({ org: "acme" })
    const host = yield* fakeHost(relay.ws, hostId, t, (req) => okResponse(req.id, `ok ${req.method} ${req.path}`))
    yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
    return { relay, token: t, host }
  })

describe("relay HTTP surface", () => {
  it.scopedLive("/health reports region and machine id", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const res = yield* get(`${relay.http}/health`)
      expect(res.status).toBe(200)
      expect(yield* Effect.promise(() => res.json())).toEqual({ ok: true, region: "test", machineId: "m1" })
    }))

  it.scopedLive("tunnel auth is checked before the upgrade: missing, bad signature, expired, no-exp and over-long tokens 401, wrong org 403, a bad hostId 400", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const cases: Array<[string, string, number]> = [
        ["", hostId, 401],
        [yield* token({ org: "acme", secret: "another-secret-another-secret-xx" }), hostId, 401],
        [yield* token({ org: "acme", expiresIn: -60 }), hostId, 401],
        [yield* token({ org: "acme", expiresIn: null }), hostId, 401], // no exp
        [yield* token({ org: "acme", issuedAgo: 0, expiresIn: 100 * 365 * 86_400 }), hostId, 401], // over the 30-day maximum
        [yield* token({ org: "other" }), hostId, 403],
        [yield* token({ org: "acme" }), "acme:bad/name", 400],
        [yield* token({ org: "acme" }), "no-colon", 400]
      ]
      for (const [t, id, status] of cases) {
        const refused = yield* Effect.flip(fakeHost(relay.ws, id, t))
        expect(refused, `${id} ${status}`).toEqual({ status })
      }
      expect(relay.registry.size()).toBe(0)
    }))

  it.scopedLive("a token in orgs[] and one passed as ?token= both register", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ orgs: ["x", "acme"] })
      yield* fakeHost(relay.ws, hostId, t)
      yield* openSocket(`${relay.ws}/tunnel?hostId=acme:other&token=${t}`)
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.size()), (n) => n === 2))
    }))

  it.scopedLive("client auth: 401 without or with a bad, expired, no-exp or over-long token, 403 for another org, 400 for a bad hostId", () =>
    Effect.gen(function*() {
      const { relay } = yield* withHost()
      const url = `${relay.http}/hosts/${hostId}/x`
      const cases: Array<[string | undefined, string, number, string]> = [
        [undefined, url, 401, "unauthorized"],
        [yield* token({ org: "acme", secret: "another-secret-another-secret-xx" }), url, 401, "unauthorized"],
        [yield* token({ org: "acme", expiresIn: -60 }), url, 401, "unauthorized"],
        [yield* token({ org: "acme", expiresIn: null }), url, 401, "unauthorized"], // no exp
        [yield* token({ org: "acme", issuedAgo: 0, expiresIn: 100 * 365 * 86_400 }), url, 401, "unauthorized"], // over the 30-day maximum
        [yield* token({ org: "other" }), url, 403, "forbidden"],
        [yield* token({ org: "acme" }), `${relay.http}/hosts/acme:b@d/x`, 400, "bad_host_id"]
      ]
      for (const [t, u, status, error] of cases) {
        const res = yield* get(u, t)
        expect(res.status).toBe(status)
        expect((yield* Effect.promise(() => res.json())).error).toBe(error)
      }
    }))

  it.scopedLive("?token= authenticates a client and is not forwarded to the host", () =>
    Effect.gen(function*() {
      const { host, relay, token: t } = yield* withHost()
      const res = yield* get(`${relay.http}/hosts/${hostId}/p?a=1&token=${t}&b=2`)
      expect(res.status).toBe(200)
      expect(yield* Effect.promise(() => res.text())).toBe("ok GET /p?a=1&b=2")
      const sent = host.messages().find((m) => m._tag === "http")
      expect(sent?._tag).toBe("http")
      expect(sent?._tag === "http" && Object.keys(sent.headers)).not.toContain("authorization")
      yield* get(`${relay.http}/hosts/${hostId}/q`, t)
      const viaHeader = host.messages().filter((m) => m._tag === "http").at(-1)
      expect(viaHeader?._tag === "http" && viaHeader.path).toBe("/q")
      expect(viaHeader?._tag === "http" && Object.keys(viaHeader.headers)).not.toContain("authorization")
    }))

  it.scopedLive("a host that is not connected answers 503 host_offline", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const res = yield* get(`${relay.http}/hosts/acme:nobody/`, yield* token({ org: "acme" }))
      expect(res.status).toBe(503)
      expect((yield* Effect.promise(() => res.json())).error).toBe("host_offline")
    }))

  it.scopedLive("last write wins: the old tunnel closes 1000 and its pending request fails 502; requests go to the new one", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      const first = yield* fakeHost(relay.ws, hostId, t) // never answers
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      const firstId = Option.getOrThrow(relay.registry.get(hostId as never)).tunnelId
      const pending = yield* Effect.fork(get(`${relay.http}/hosts/${hostId}/slow`, t))
      yield* Effect.promise(() => first.waitFrames(1))
      yield* fakeHost(relay.ws, hostId, t, (req) => okResponse(req.id, "second"))
      expect(yield* Effect.promise(() => first.closed)).toEqual({ code: 1000, reason: "Replaced by new tunnel" })
      const failed = yield* pending
      expect(failed.status).toBe(502)
      expect((yield* Effect.promise(() => failed.json())).error).toBe("tunnel_closed")
      const res = yield* get(`${relay.http}/hosts/${hostId}/`, t)
      expect(yield* Effect.promise(() => res.text())).toBe("second")
      const entries = yield* relay.directory.lookup(hostId as never)
      expect(entries).toHaveLength(1)
      expect(entries[0]!.tunnelId).not.toBe(firstId)
    }))

  it.scopedLive("malformed frames from a host are ignored; that tunnel and others keep serving", () =>
    Effect.gen(function*() {
      const { host, relay, token: t } = yield* withHost()
      const other = yield* fakeHost(relay.ws, "acme:other", t, (req) => okResponse(req.id, "other"))
      for (
        const bad of [
          "{not json",
          JSON.stringify({ type: "teleport" }),
          JSON.stringify({ type: "http:response", id: "nope", status: 200, headers: {} }),
          JSON.stringify({ type: "http:response", id: "1", status: "x", headers: [] }),
          JSON.stringify({ type: "ws:frame", id: 5 })
        ]
      ) host.sendRaw(bad)
      host.sendRaw(Buffer.from([0, 1, 2]))
      const res = yield* get(`${relay.http}/hosts/${hostId}/`, t)
      expect(yield* Effect.promise(() => res.text())).toBe("ok GET /")
      const fromOther = yield* get(`${relay.http}/hosts/acme:other/`, t)
      expect(yield* Effect.promise(() => fromOther.text())).toBe("other")
      expect(other.frames.length).toBeGreaterThan(0)
    }))

  it.scopedLive("a body over the limit gets 413 before it touches the tunnel (declared and chunked)", () =>
    Effect.gen(function*() {
      const { host, relay, token: t } = yield* withHost({ maxBodyBytes: 1024 })
      const big = new Uint8Array(4096)
      const declared = yield* get(`${relay.http}/hosts/${hostId}/up`, t, { method: "POST", body: big })
      expect(declared.status).toBe(413)
      expect((yield* Effect.promise(() => declared.json())).error).toBe("payload_too_large")
      const stream = new ReadableStream({
        start(c) {
          c.enqueue(big)
          c.close()
        }
      })
      const chunked = yield* get(`${relay.http}/hosts/${hostId}/up`, t, { method: "POST", body: stream, duplex: "half" } as RequestInit)
      expect(chunked.status).toBe(413)
      expect(host.messages().filter((m) => m._tag === "http")).toHaveLength(0)
      expect((yield* get(`${relay.http}/hosts/${hostId}/small`, t, { method: "POST", body: "x" })).status).toBe(200)
    }))

  it.scopedLive("a response with no room left in its tunnel's body budget is answered 503 busy, and the room comes back when the client has read", () =>
    Effect.gen(function*() {
      // Larger than the kernel's socket buffers take on loopback: the rest waits in the relay's memory.
      const big = Buffer.alloc(9 * 1024 * 1024, 0x61).toString("base64")
      const relay = yield* startRelay({ maxBodyBytes: 10 * 1024 * 1024, tunnelBodyBudgetBytes: 12 * 1024 * 1024 })
      const t = yield* token({ org: "acme" })
      yield* fakeHost(relay.ws, hostId, t, (req) => HttpResponse.make({ id: req.id, status: 200, headers: {}, body: big, bodyEncoding: "base64" }))
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      // A client that reads nothing holds 9 MiB of the tunnel's 12.
      const stalled = net.connect(relay.port, "127.0.0.1")
      stalled.on("error", () => {})
      stalled.pause()
      stalled.write(`GET /hosts/${hostId}/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\n\r\n`)
      yield* eventually(Effect.filterOrFail(Effect.sync(() => Option.getOrThrow(relay.registry.get(hostId as never)).bodyBudget().available()), (n) => n < 4 * 1024 * 1024))
      const refused = yield* get(`${relay.http}/hosts/${hostId}/b`, t)
      expect(refused.status).toBe(503)
      expect(refused.headers.get("retry-after")).toBe("1")
      expect((yield* Effect.promise(() => refused.json())).error).toBe("busy")
      stalled.destroy()
      yield* eventually(Effect.filterOrFail(get(`${relay.http}/hosts/${hostId}/c`, t), (res) => res.status === 200))
    }))

  it.scopedLive("the request over the pending cap gets 503 too_many_pending; a slow host gets 504", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay({ maxPendingPerTunnel: 2, requestTimeoutMs: 400 })
      const t = yield* token({ org: "acme" })
      const host = yield* fakeHost(relay.ws, hostId, t) // never answers
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      const a = yield* Effect.fork(get(`${relay.http}/hosts/${hostId}/1`, t))
      const b = yield* Effect.fork(get(`${relay.http}/hosts/${hostId}/2`, t))
      yield* Effect.promise(() => host.waitFrames(2))
      const third = yield* get(`${relay.http}/hosts/${hostId}/3`, t)
      expect(third.status).toBe(503)
      expect((yield* Effect.promise(() => third.json())).error).toBe("too_many_pending")
      const timedOut = yield* a
      expect(timedOut.status).toBe(504)
      expect((yield* Effect.promise(() => timedOut.json())).error).toBe("request_timeout")
      expect((yield* b).status).toBe(504)
    }))

  it.scopedLive("a client that resets TCP during the upgrade does not take the relay down", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      for (let i = 0; i < 5; i++) {
        yield* Effect.async<void>((resume) => {
          const socket = net.connect(relay.port, "127.0.0.1", () => {
            socket.write(
              `GET /tunnel?hostId=${hostId} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
            )
            socket.resetAndDestroy()
            resume(Effect.void)
          })
          socket.on("error", () => {})
        })
      }
      yield* Effect.sleep("100 millis")
      expect((yield* get(`${relay.http}/health`)).status).toBe(200)
    }))

  it.scopedLive("host response headers pass through, hop-by-hop ones do not", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* fakeHost(relay.ws, hostId, t, (req) =>
        HttpResponse.make({
          id: req.id,
          status: 200,
          headers: { "x-one": "1", "set-cookie": ["a=1", "b=2"], connection: "x-secret", "x-secret": "no", "transfer-encoding": "chunked" },
          body: "hi"
        }))
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      const res = yield* get(`${relay.http}/hosts/${hostId}/`, t)
      expect(res.headers.get("x-one")).toBe("1")
      expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2"])
      expect(res.headers.get("x-secret")).toBeNull()
      expect(yield* Effect.promise(() => res.text())).toBe("hi")
    }))

  it.scopedLive("an interim (1xx) status from the host is a 502, not a hang", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* fakeHost(relay.ws, hostId, t, (req) => HttpResponse.make({ id: req.id, status: 103, headers: {} }))
      yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
      const res = yield* get(`${relay.http}/hosts/${hostId}/`, t)
      expect(res.status).toBe(502)
      expect((yield* Effect.promise(() => res.json())).error).toBe("bad_response")
    }))

  it.scopedLive("a host closing a channel with a long multibyte reason does not stop the tunnel", () =>
    Effect.gen(function*() {
      const { host, relay, token: t } = yield* withHost()
      const client = yield* openSocket(`${relay.ws}/hosts/${hostId}/ws`, { authorization: `Bearer ${t}` })
      yield* eventually(Effect.filterOrFail(Effect.sync(() => host.messages().find((m) => m._tag === "ws:open")), (m) => m !== undefined))
      const open = host.messages().find((m) => m._tag === "ws:open")!
      host.sendRaw(JSON.stringify({ type: "ws:close", id: (open as { id: string }).id, code: 4000, reason: "é".repeat(100) }))
      const closed = yield* Effect.promise(() => client.closed)
      expect(closed.code).toBe(4000)
      expect(Buffer.byteLength(closed.reason)).toBeLessThanOrEqual(123)
      expect((yield* get(`${relay.http}/hosts/${hostId}/after`, t)).status).toBe(200)
    }))

  it.scopedLive("an upgrade that ws refuses (no key) is answered and leaves the relay serving", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const reply = yield* Effect.async<string>((resume) => {
        const socket = net.connect(relay.port, "127.0.0.1", () =>
          socket.write(`GET /tunnel?hostId=${hostId} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`))
        let data = ""
        socket.on("data", (d) => (data += d.toString()))
        socket.on("close", () => resume(Effect.succeed(data)))
        socket.on("error", () => {})
      })
      // Checked before ws looks at the handshake: no token, no upgrade.
      expect(reply).toMatch(/^HTTP\/1.1 401/)
      const t = yield* token({ org: "acme" })
      const noKey = yield* Effect.async<string>((resume) => {
        const socket = net.connect(relay.port, "127.0.0.1", () =>
          socket.write(`GET /tunnel?hostId=${hostId} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`))
        let data = ""
        socket.on("data", (d) => (data += d.toString()))
        socket.on("close", () => resume(Effect.succeed(data)))
        socket.on("error", () => {})
      })
      expect(noKey).toMatch(/^HTTP\/1.1 400/)
      expect((yield* get(`${relay.http}/health`)).status).toBe(200)
    }))

  it.scopedLive("a directory entry naming this relay without a local tunnel is stale: 503 host_offline, and it is deleted", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      yield* relay.directory.register({
        hostId: "acme:ghost" as never,
        owner: "test:m1",
        tunnelId: "gone",
        instanceId: "i-gone",
        connectedAt: 0,
        internalUrl: relay.http
      })
      const res = yield* get(`${relay.http}/hosts/acme:ghost/x`, t)
      expect(res.status).toBe(503)
      expect((yield* Effect.promise(() => res.json())).error).toBe("host_offline")
      expect(yield* relay.directory.lookup("acme:ghost" as never)).toEqual([])
    }))
})
