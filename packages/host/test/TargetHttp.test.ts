import { decodeBytes, HttpRequest, type HttpResponse } from "@effect-relay/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Effect, HashMap, List, Logger } from "effect"
import { randomBytes } from "node:crypto"
import { TargetHttp, layer as targetHttpLayer } from "../src/TargetHttp.js"
import { closedPort, httpServer } from "./servers.js"

const MiB = 1024 * 1024

/** The local service the tests forward to. */
const target = httpServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x")
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    const body = Buffer.concat(chunks)
    switch (url.pathname) {
      case "/hello":
        res.setHeader("x-greeting", "hi")
        res.setHeader("connection", "keep-alive")
        return res.end("hello")
      case "/inspect":
        res.setHeader("content-type", "application/json")
        return res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, length: body.length }))
      case "/echo":
        res.setHeader("content-type", "application/octet-stream")
        return res.end(body)
      case "/cookies":
        res.setHeader("set-cookie", ["a=1; Path=/", "b=2; HttpOnly"])
        return res.end()
      case "/missing":
        res.statusCode = 404
        return res.end("nothing here")
      case "/boom":
        res.statusCode = 500
        return res.end("it broke")
      case "/big": {
        // 5 MiB in chunks, no content-length: the limit must hold while streaming.
        res.setHeader("content-type", "application/octet-stream")
        const chunk = Buffer.alloc(MiB, 1)
        let sent = 0
        const more = () => {
          while (sent < 5) {
            sent++
            if (!res.write(chunk)) return res.once("drain", more)
          }
          res.end()
        }
        return more()
      }
      case "/big-declared":
        res.setHeader("content-length", String(5 * MiB))
        return res.end(Buffer.alloc(5 * MiB))
      case "/hang":
        return
      default:
        res.statusCode = 400
        return res.end()
    }
  })
})

const forwarder = (targetUrl: string) =>
  targetHttpLayer({ targetUrl, requestTimeoutMs: 300, maxBodyBytes: 4 * MiB })

const forward = (request: HttpRequest) => Effect.flatMap(TargetHttp, (t) => t.forward(request))

const get = (path: string, id = "r1") => HttpRequest.make({ id, method: "GET", path, headers: {} })

const bodyOf = (response: HttpResponse) => decodeBytes(response.body, response.bodyEncoding)

const errorOf = (response: HttpResponse) => JSON.parse(bodyOf(response).toString()) as { error: string; message: string }

describe("TargetHttp (real node:http target)", () => {
  it.scopedLive("GET: status, headers and body pass through; hop-by-hop headers are dropped", () =>
    Effect.gen(function*() {
      const { url } = yield* target
      const response = yield* forward(get("/hello")).pipe(Effect.provide(forwarder(url)))
      expect(response.id).toBe("r1")
      expect(response.status).toBe(200)
      expect(response.headers["x-greeting"]).toBe("hi")
      expect(bodyOf(response).toString()).toBe("hello")
      expect(response.bodyEncoding).toBeUndefined()
      for (const hop of ["connection", "keep-alive", "transfer-encoding", "content-length"]) {
        expect(response.headers[hop]).toBeUndefined()
      }
    }))

  it.scopedLive("sends path with query, the target's host header, and the relay's headers minus hop-by-hop", () =>
    Effect.gen(function*() {
      const { port, url } = yield* target
      const response = yield* forward(
        HttpRequest.make({
          id: "r2",
          method: "PATCH",
          path: "/inspect?x=1&y=%20z",
          headers: { host: "relay.example", "x-custom": "yes", accept: ["a/b", "c/d"], connection: "upgrade", "proxy-authorization": "secret" },
          body: "abc"
        })
      ).pipe(Effect.provide(forwarder(url)))
      const seen = JSON.parse(bodyOf(response).toString())
      expect(seen.method).toBe("PATCH")
      expect(seen.url).toBe("/inspect?x=1&y=%20z")
      expect(seen.headers.host).toBe(`127.0.0.1:${port}`)
      expect(seen.headers["x-custom"]).toBe("yes")
      expect(seen.headers.accept).toBe("a/b, c/d")
      expect(seen.headers["proxy-authorization"]).toBeUndefined()
      expect(seen.headers["content-length"]).toBe("3")
      expect(seen.length).toBe(3)
    }))

  it.scopedLive("POST with a 1 MiB random binary body comes back byte-identical", () =>
    Effect.gen(function*() {
      const { url } = yield* target
      const bytes = randomBytes(MiB)
      const response = yield* forward(
        HttpRequest.make({
          id: "r3",
          method: "POST",
          path: "/echo",
          headers: { "content-type": "application/octet-stream" },
          body: bytes.toString("base64"),
          bodyEncoding: "base64"
        })
      ).pipe(Effect.provide(forwarder(url)))
      expect(response.status).toBe(200)
      expect(response.bodyEncoding).toBe("base64")
      expect(Buffer.compare(bodyOf(response), bytes)).toBe(0)
    }))

  it.scopedLive("repeated set-cookie headers stay an array", () =>
    Effect.gen(function*() {
      const { url } = yield* target
      const response = yield* forward(get("/cookies")).pipe(Effect.provide(forwarder(url)))
      expect(response.headers["set-cookie"]).toEqual(["a=1; Path=/", "b=2; HttpOnly"])
      expect(response.body).toBeUndefined()
    }))

  it.scopedLive("404 and 500 pass through with their bodies", () =>
    Effect.gen(function*() {
      const { url } = yield* target
      const [missing, boom] = yield* Effect.all([forward(get("/missing", "a")), forward(get("/boom", "b"))], {
        concurrency: 2
      }).pipe(Effect.provide(forwarder(url)))
      expect([missing.id, missing.status, bodyOf(missing).toString()]).toEqual(["a", 404, "nothing here"])
      expect([boom.id, boom.status, bodyOf(boom).toString()]).toEqual(["b", 500, "it broke"])
    }))

  it.scopedLive("target down: 502 target_unreachable with a generic message; the address and system error are only logged", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const logged: Array<Record<string, unknown>> = []
      const logger = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, message }) => {
          logged.push({ message: List.isList(message) ? List.toArray(message) : message, ...Object.fromEntries(HashMap.toEntries(annotations)) })
        })
      )
      const response = yield* forward(get("/hello")).pipe(Effect.provide(forwarder(`http://127.0.0.1:${port}`)), Effect.provide(logger))
      expect(response.status).toBe(502)
      expect(response.headers["content-type"]).toBe("application/json")
      expect(errorOf(response)).toEqual({ error: "target_unreachable", message: "the host's service could not be reached" })
      expect(bodyOf(response).toString()).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|\d{4,5}/)
      const line = logged.find((l) => JSON.stringify(l.message).includes("http.target_error"))
      expect(line?.detail).toContain(`ECONNREFUSED 127.0.0.1:${port}`)
    }))

  it.scopedLive("a response body over maxBodyBytes: 502 response_too_large (streamed or declared)", () =>
    Effect.gen(function*() {
      const { url } = yield* target
      yield* Effect.gen(function*() {
        const streamed = yield* forward(get("/big"))
        expect(streamed.status).toBe(502)
        expect(errorOf(streamed).error).toBe("response_too_large")
        const declared = yield* forward(get("/big-declared"))
        expect(declared.status).toBe(502)
        expect(errorOf(declared).error).toBe("response_too_large")
        // The same client still serves the next request.
        expect((yield* forward(get("/hello"))).status).toBe(200)
      }).pipe(Effect.provide(forwarder(url)))
    }))

  it.scopedLive("a target that does not answer in time: 504 target_timeout", () =>
    Effect.gen(function*() {
      const { url } = yield* target
      const started = Date.now()
      const response = yield* forward(get("/hang")).pipe(Effect.provide(forwarder(url)))
      expect(response.status).toBe(504)
      expect(errorOf(response)).toEqual({ error: "target_timeout", message: "the host's service did not answer in time" })
      expect(Date.now() - started).toBeLessThan(2_000)
    }))

  it.scopedLive("a request node:http refuses to send: 400 invalid_request, no crash", () =>
    Effect.gen(function*() {
      const { url } = yield* target
      const response = yield* forward(
        HttpRequest.make({ id: "r9", method: "GET", path: "/hello", headers: { "bad header": "x" } })
      ).pipe(Effect.provide(forwarder(url)))
      expect(response.status).toBe(400)
      expect(errorOf(response).error).toBe("invalid_request")
    }))

  it.scopedLive("a kept-alive socket the target closes just as it is reused: the request is sent again on a new socket and answered", () =>
    Effect.gen(function*() {
      // Answers the first request on each connection; a second request on the same connection
      // finds it closed (what a target whose keep-alive timeout just ran out does).
      const seen = { requests: 0, connections: 0 }
      const { server, url } = yield* httpServer((req, res) => {
        seen.requests++
        const socket = req.socket as typeof req.socket & { served?: boolean }
        if (socket.served) return void socket.destroy()
        socket.served = true
        res.end("ok")
      })
      server.on("connection", () => seen.connections++)
      const both = yield* Effect.all([forward(get("/a", "r1")), Effect.flatMap(Effect.sleep("20 millis"), () => forward(get("/b", "r2")))], { concurrency: 1 }).pipe(
        Effect.provide(forwarder(url))
      )
      expect(both.map((r) => r.status)).toEqual([200, 200])
      expect(seen).toEqual({ requests: 3, connections: 2 })
    }))
})
