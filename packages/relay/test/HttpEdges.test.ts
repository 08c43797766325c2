import { HostToRelayCodec, HttpResponse } from "@effect-relay/protocol"
import { type FakeHost, fakeHost, openSocket, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as net from "node:net"
import { eventually, get, startRelay } from "./support.js"

/** The edges of the relay's HTTP: statuses node:http decides, half-closed clients, paths, what a 502 says. */

const hostId = "acme:laptop"

/**
 * Sends `data` on a raw connection, then half-closes (`end`) or keeps sending side open, and
 * resolves with everything received once the relay closes (or after `timeoutMs`, marked).
 */
const raw = (port: number, data: string, options: { readonly halfClose?: boolean; readonly timeoutMs?: number } = {}) =>
  Effect.async<string>((resume) => {
    let received = ""
    const socket = net.connect(port, "127.0.0.1", () => (options.halfClose === false ? socket.write(data) : socket.end(data)))
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => (received += chunk))
    socket.on("error", () => {})
    socket.on("close", () => resume(Effect.succeed(received)))
    const timer = setTimeout(() => {
      socket.destroy()
      resume(Effect.succeed(`${received}[no close within ${options.timeoutMs ?? 5000} ms]`))
    }, options.timeoutMs ?? 5000)
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1] ?? 0)
const jsonOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as { error: string; message: string }

/** A relay with a fake host that answers `ok <path>` (after `delayMs`, sent by hand so the answer comes late). */
const withHost = (overrides = {}, delayMs = 0) =>
  Effect.gen(function*() {
    const relay = yield* startRelay(overrides)
    const t = yield* token({ org: "acme" })
    const box: { host?: FakeHost } = {}
    const host = yield* fakeHost(relay.ws, hostId, t, (req) => {
      const answer = HttpResponse.make({ id: req.id, status: 200, headers: { "content-type": "text/plain" }, body: `ok ${req.method} ${req.path}` })
      if (delayMs === 0) return answer
      setTimeout(() => box.host?.sendRaw(HostToRelayCodec.encode(answer)), delayMs)
      return undefined
    })
    box.host = host
    yield* eventually(Effect.filterOrFail(Effect.sync(() => relay.registry.get(hostId as never)), Option.isSome))
    return { relay, token: t, host }
  })

const request = (path: string, t: string, extra = "") =>
  `GET ${path} HTTP/1.1\r\nHost: relay.test\r\nAuthorization: Bearer ${t}\r\n${extra}\r\n`

describe("statuses node:http decides, in the relay's JSON", () => {
  it.scopedLive("headers over MAX_HEADER_BYTES: 431 headers_too_large; a larger limit lets them through", () =>
    Effect.gen(function*() {
      const { relay, token: t } = yield* withHost({ maxHeaderBytes: 8 * 1024 })
      const big = `X-Big: ${"a".repeat(10 * 1024)}\r\n`
      const answer = yield* raw(relay.port, request(`/hosts/${hostId}/x`, t, big))
      expect(statusOf(answer)).toBe(431)
      expect(answer).toMatch(/\r\ncontent-type: application\/json\r\n/i)
      expect(jsonOf(answer)).toEqual({ error: "headers_too_large", message: "the request line and headers exceed 8192 bytes" })
      const roomier = yield* withHost({ maxHeaderBytes: 32 * 1024 })
      expect(statusOf(yield* raw(roomier.relay.port, request(`/hosts/${hostId}/x`, roomier.token, big)))).toBe(200)
      expect((yield* get(`${relay.http}/health`)).status).toBe(200)
    }))

  it.scopedLive("headers that take longer than HEADERS_TIMEOUT_MS: 408 client_timeout", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay({ headersTimeoutMs: 300 })
      const started = Date.now()
      const answer = yield* raw(relay.port, "GET /health HTTP/1.1\r\nHost: relay.test\r\n", { halfClose: false })
      expect(statusOf(answer)).toBe(408)
      expect(jsonOf(answer)).toEqual({ error: "client_timeout", message: "the request was not received in time" })
      expect(Date.now() - started).toBeLessThan(3_000)
      expect((yield* get(`${relay.http}/health`)).status).toBe(200)
    }))

  it.scopedLive("a request that is not HTTP: 400 bad_request", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const answer = yield* raw(relay.port, "HELLO THERE\r\n\r\n")
      expect(statusOf(answer)).toBe(400)
      expect(jsonOf(answer).error).toBe("bad_request")
    }))
})

describe("a client that half-closes after its request", () => {
  it.scopedLive("still gets the answer (GET and POST through a tunnel, and /health)", () =>
    Effect.gen(function*() {
      const { relay, token: t } = yield* withHost({}, 150)
      const answer = yield* raw(relay.port, request(`/hosts/${hostId}/late`, t))
      expect(statusOf(answer)).toBe(200)
      expect(answer.endsWith("ok GET /late")).toBe(true)
      const post = `POST /hosts/${hostId}/upload HTTP/1.1\r\nHost: relay.test\r\nAuthorization: Bearer ${t}\r\nContent-Length: 5\r\n\r\nhello`
      const posted = yield* raw(relay.port, post)
      expect(statusOf(posted)).toBe(200)
      expect(posted.endsWith("ok POST /upload")).toBe(true)
      const health = yield* raw(relay.port, "GET /health HTTP/1.1\r\nHost: relay.test\r\n\r\n")
      expect(statusOf(health)).toBe(200)
    }))

  it.scopedLive("one that half-closes in the middle of its body gets 400 at once, not a hang", () =>
    Effect.gen(function*() {
      const { relay, token: t } = yield* withHost()
      const cut = `POST /hosts/${hostId}/upload HTTP/1.1\r\nHost: relay.test\r\nAuthorization: Bearer ${t}\r\nContent-Length: 10\r\n\r\nabc`
      const answer = yield* raw(relay.port, cut, { timeoutMs: 3000 })
      expect(statusOf(answer)).toBe(400)
      expect((yield* get(`${relay.http}/health`)).status).toBe(200)
    }))
})

describe("the path a host gets", () => {
  it.scopedLive("dot segments, encoded or not, are resolved before forwarding, over HTTP and WebSocket", () =>
    Effect.gen(function*() {
      const { host, relay, token: t } = yield* withHost()
      const cases: Array<[string, string]> = [
        [`/hosts/${hostId}/../echo`, "ok GET /echo"],
        [`/hosts/${hostId}/a/../../b?x=1`, "ok GET /b?x=1"],
        [`/hosts/${hostId}/%2e%2e/%2E%2e/echo`, "ok GET /echo"],
        [`/hosts/${hostId}//evil.example/x`, "ok GET /evil.example/x"]
      ]
      for (const [path, body] of cases) {
        const answer = yield* raw(relay.port, request(path, t))
        expect(statusOf(answer), path).toBe(200)
        expect(answer.endsWith(body), `${path}: ${answer}`).toBe(true)
      }
      // A WebSocket's path is resolved the same way (sent raw: a WebSocket client would resolve it first).
      const upgrade = request(`/hosts/${hostId}/chat/%2e%2e/../../socket?q=1`, t,
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
      yield* Effect.fork(raw(relay.port, upgrade, { halfClose: false, timeoutMs: 2000 }))
      const opened = yield* eventually(Effect.filterOrFail(
        Effect.sync(() => host.messages().find((m) => m._tag === "ws:open")),
        (m) => m !== undefined
      ))
      expect(opened).toMatchObject({ path: "/socket", query: "q=1" })
    }))
})

describe("a 502 names nothing internal", () => {
  it.scopedLive("the relay holding the host cannot be reached: peer_unreachable, without its name or address", () =>
    Effect.gen(function*() {
      const relay = yield* startRelay()
      const t = yield* token({ org: "acme" })
      // A directory entry naming another relay at an address where nothing listens.
      const closed = yield* Effect.async<number>((resume) => {
        const server = net.createServer().listen(0, "127.0.0.1", () => {
          const port = (server.address() as net.AddressInfo).port
          server.close(() => resume(Effect.succeed(port)))
        })
      })
      yield* relay.directory.register({
        hostId: "acme:elsewhere" as never,
        owner: "iad:relay-machine-7",
        tunnelId: "t1",
        instanceId: "i1",
        connectedAt: Date.now(),
        internalUrl: `http://127.0.0.1:${closed}`
      })
      const res = yield* get(`${relay.http}/hosts/acme:elsewhere/x`, t)
      expect(res.status).toBe(502)
      const text = yield* Effect.promise(() => res.text())
      expect(JSON.parse(text)).toEqual({ error: "peer_unreachable", message: "the relay holding this host cannot be reached" })
      expect(text).not.toMatch(/relay-machine-7|127\.0\.0\.1|ECONNREFUSED/)
      const socket = yield* Effect.either(openSocket(`${relay.ws}/hosts/acme:elsewhere/x`, { authorization: `Bearer ${t}` }))
      expect(socket._tag === "Left" && (socket.left as { status?: number }).status).toBe(502)
    }))
})
