import { CloseCodes, HostToRelayCodec, HttpResponse, type HostId } from "@effect-relay/protocol"
import { fakeHost, partialRequest, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Option, Redacted, Scope } from "effect"
import * as http from "node:http"
import * as net from "node:net"
import * as jose from "jose"
import { Directory } from "../src/directory/Directory.js"
import * as MemoryDirectory from "../src/directory/Memory.js"
import { RelayLive } from "../src/Relay.js"
import { RelayServer } from "../src/http/RelayServer.js"
import { TunnelRegistry } from "../src/tunnel/TunnelRegistry.js"
import { eventually, get, testConfig } from "./support.js"

/** A memory directory that counts calls, to see the drain's one batched clear. */
const countingDirectory = Effect.map(MemoryDirectory.make(), (inner) => {
  const calls = { unregister: 0, clearOwn: 0 }
  const directory = Directory.of({
    ...inner,
    unregister: (ref) => Effect.zipRight(Effect.sync(() => calls.unregister++), inner.unregister(ref)),
    clearOwn: (o) => Effect.zipRight(Effect.sync(() => calls.clearOwn++), inner.clearOwn(o))
  })
  return { directory, calls }
})

describe("drain (in process)", () => {
  it.scopedLive("closing the relay's scope: drain frame then 4001 to every host, in-flight responses still delivered, one directory clear, no per-tunnel unregister", () =>
    Effect.gen(function*() {
      const { calls, directory } = yield* countingDirectory
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        RelayLive.pipe(Layer.provide(testConfig({ drainFlushMs: 300 })), Layer.provide(Layer.succeed(Directory, directory))),
        scope
      )
      const port = Context.get(context, RelayServer).port
      const registry = Context.get(context, TunnelRegistry)
      const t = yield* token({ org: "acme" })
      const hosts = yield* Effect.forEach(["a", "b", "c"], (name) => fakeHost(`ws://127.0.0.1:${port}`, `acme:${name}`, t))
      // Host "a" answers its request late, inside the flush window.
      hosts[0]!.ws.on("message", (data) => {
        const m = JSON.parse(data.toString())
        if (m.type === "drain") {
          const pendingId = hosts[0]!.messages().find((x) => x._tag === "http")
          if (pendingId?._tag === "http") {
            setTimeout(() => hosts[0]!.ws.send(HostToRelayCodec.encode(HttpResponse.make({ id: pendingId.id, status: 200, headers: {}, body: "late" }))), 100)
          }
        }
      })
      yield* eventually(Effect.filterOrFail(Effect.sync(() => registry.size()), (n) => n === 3))
      const inFlight = yield* Effect.fork(get(`http://127.0.0.1:${port}/hosts/acme:a/x`, t))
      yield* Effect.promise(() => hosts[0]!.waitFrames(1))

      const start = Date.now()
      yield* Scope.close(scope, Exit.void)
      const took = Date.now() - start

      for (const host of hosts) {
        const closed = yield* Effect.promise(() => host.closed)
        expect(closed.code).toBe(CloseCodes.Drain)
        expect(host.messages().at(-1)?._tag).toBe("drain")
      }
      const res = yield* inFlight
      expect(res.status).toBe(200)
      expect(yield* Effect.promise(() => res.text())).toBe("late")
      expect(calls.unregister).toBe(0)
      expect(calls.clearOwn).toBe(2) // once at startup, once in the drain
      for (const name of ["a", "b", "c"]) expect(yield* directory.lookup(`acme:${name}` as HostId)).toEqual([])
      expect(took).toBeLessThan(2000)
    }))

  it.scopedLive("while draining: /ready is 503, /health 200 with Connection: close, new connections are still answered while tunnels drain (refused once they are closed), and a tunnel upgrade is closed 4001", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        RelayLive.pipe(Layer.provide(testConfig({ drainFlushMs: 1500 })), Layer.provide(MemoryDirectory.layer)),
        scope
      )
      const port = Context.get(context, RelayServer).port
      const t = yield* token({ org: "acme" })
      // A host that never answers, with a request in flight: the drain lasts the flush window.
      const slow = yield* fakeHost(`ws://127.0.0.1:${port}`, "acme:slow", t)
      yield* eventually(Effect.filterOrFail(Effect.sync(() => Context.get(context, TunnelRegistry).size()), (n) => n === 1))
      yield* Effect.forkDaemon(Effect.ignore(get(`http://127.0.0.1:${port}/hosts/acme:slow/hang`, t)))
      yield* Effect.promise(() => slow.waitFrames(1))
      expect((yield* get(`http://127.0.0.1:${port}/ready`)).status).toBe(200)
      // Connections whose requests are on their way when the drain starts (idle ones are closed by it).
      const ready = yield* partialRequest(port, "GET /ready HTTP/1.1\r\nHost: relay\r\n")
      const health = yield* partialRequest(port, "GET /health HTTP/1.1\r\nHost: relay\r\n")
      const tunnel = yield* partialRequest(
        port,
        `GET /tunnel?hostId=acme:late HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer ${t}\r\n` +
          "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      )

      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Effect.sleep("100 millis")
      expect((yield* ready.finish("\r\n")).toString()).toMatch(/^HTTP\/1.1 503/)
      const healthAnswer = (yield* health.finish("\r\n")).toString()
      expect(healthAnswer).toMatch(/^HTTP\/1.1 200/)
      expect(healthAnswer.toLowerCase()).toContain("connection: close")
      // The listener stays open while the tunnels drain: a load balancer's late request is answered.
      expect((yield* get(`http://127.0.0.1:${port}/health`)).status).toBe(200)
      const upgraded = yield* tunnel.finish("Sec-WebSocket-Version: 13\r\n\r\n", (b) => b.indexOf("\r\n\r\n") !== -1 && b.length >= b.indexOf("\r\n\r\n") + 8)
      expect(upgraded.toString()).toMatch(/^HTTP\/1.1 101/)
      const frame = upgraded.subarray(upgraded.indexOf("\r\n\r\n") + 4)
      expect(frame[0]).toBe(0x88) // FIN + close
      expect(frame.readUInt16BE(2)).toBe(CloseCodes.Drain)
      expect(frame.subarray(4, 4 + frame[1]! - 2).toString()).toBe("draining")
      // Once the tunnels are closed (the slow host's flush window), new connections are refused.
      yield* Effect.sleep("1600 millis")
      const refused = yield* Effect.async<string>((resume) => {
        const socket = net.connect(port, "127.0.0.1", () => resume(Effect.succeed("connected")))
        socket.on("error", (e: NodeJS.ErrnoException) => resume(Effect.succeed(e.code ?? "error")))
      })
      expect(refused).toBe("ECONNREFUSED")
      yield* Fiber.join(closing)
    }))
})

describe("drain re-check after async auth", () => {
  it.scopedLive("a host whose token is still being verified when the drain starts is closed 4001, not registered", () =>
    Effect.gen(function*() {
      // A JWKS endpoint that answers slowly, so the drain flips while the relay is verifying.
      const { privateKey, publicKey } = yield* Effect.promise(() => jose.generateKeyPair("ES256"))
      const jwk = { ...(yield* Effect.promise(() => jose.exportJWK(publicKey))), kid: "k1", alg: "ES256" }
      const jwks = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const server = http.createServer((_req, res) => setTimeout(() => res.end(JSON.stringify({ keys: [jwk] })), 400))
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.sync(() => {
          server.closeAllConnections()
          server.close()
        })
      )
      const jwksUrl = `http://127.0.0.1:${(jwks.address() as net.AddressInfo).port}/jwks.json`
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        RelayLive.pipe(
          Layer.provide(testConfig({ auth: { key: { _tag: "Jwks", url: jwksUrl }, issuer: Option.none(), audience: Option.none() } })),
          Layer.provide(MemoryDirectory.layer)
        ),
        scope
      )
      const port = Context.get(context, RelayServer).port
      const registry = Context.get(context, TunnelRegistry)
      const t = yield* Effect.promise(() =>
        new jose.SignJWT({ org: "acme" }).setProtectedHeader({ alg: "ES256", kid: "k1" }).setExpirationTime("1h").sign(privateKey)
      )
      const host = yield* fakeHost(`ws://127.0.0.1:${port}`, "acme:racer", t)
      yield* Effect.sleep("100 millis") // upgraded, auth in flight
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.promise(() => host.closed)).toEqual({ code: CloseCodes.Drain, reason: "draining" })
      expect(registry.size()).toBe(0)
    }))
})

/**
 * A request held by the relay in `context` for a host no relay has ("acme:gone"), then the
 * relay's scope closed (its drain): the request must get 503 host_offline, an answer and not a
 * reset (fetch would fail). Returns how long the drain took.
 */
const heldThroughDrain = (scope: Scope.CloseableScope, context: Context.Context<RelayServer>) =>
  Effect.gen(function*() {
    const port = Context.get(context, RelayServer).port
    const t = yield* token({ org: "acme" })
    const held = yield* Effect.fork(Effect.exit(get(`http://127.0.0.1:${port}/hosts/acme:gone/x`, t)))
    yield* Effect.sleep("200 millis")
    expect(held.unsafePoll()).toBeNull()

    const start = Date.now()
    yield* Scope.close(scope, Exit.void)
    const took = Date.now() - start

    const res = yield* Fiber.join(held)
    expect(Exit.isSuccess(res), String(res)).toBe(true)
    if (Exit.isSuccess(res)) {
      expect(res.value.status).toBe(503)
      expect((yield* Effect.promise(() => res.value.json())).error).toBe("host_offline")
    }
    return took
  })

describe("drain and held requests", () => {
  it.scopedLive("with the in-memory directory, a request held for an offline host gets 503 host_offline when the drain stops accepting, not a reset after the flush window", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        RelayLive.pipe(Layer.provide(testConfig({ drainFlushMs: 3_000, holdMs: 10_000 })), Layer.provide(MemoryDirectory.layer)),
        scope
      )
      // Nothing could release it: the drain did not wait the 3 s flush window for it.
      expect(yield* heldThroughDrain(scope, context)).toBeLessThan(2_000)
    }))

  it.scopedLive("with a shared directory, a held request waits through the flush window (another relay may register its host), then gets 503 host_offline before the connections close, not a reset", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      // The directory's kind is what the config says (REDIS_URL); the directory itself is in memory here.
      const config = testConfig({
        drainFlushMs: 1_000,
        holdMs: 10_000,
        redisUrl: Option.some(Redacted.make("redis://127.0.0.1:1")),
        peerSecret: Option.some(Redacted.make("drain-test-peer-secret"))
      })
      const context = yield* Layer.buildWithScope(RelayLive.pipe(Layer.provide(config), Layer.provide(MemoryDirectory.layer)), scope)
      const took = yield* heldThroughDrain(scope, context)
      expect(took).toBeGreaterThanOrEqual(900)
      expect(took).toBeLessThan(3_000)
    }))
})
