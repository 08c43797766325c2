/**
 * Tunnel protocol version 2, end to end with real processes: the built relay and host agent, a
 * target in this process that says what it saw, clients on real sockets. Bodies stream both ways
 * with flow control, a slow reader pauses the target, a client that goes away stops it, a target
 * that fails mid-body fails the client's response, a small request is not stuck behind a large
 * one, and either side may be of the older version.
 *
 * In the timing project: some of it measures time and memory.
 */
import {
  MiB,
  openSocket,
  patternChunk,
  patternSha256,
  redisPrefix,
  redisUrl,
  type RelayProcess,
  sampleRss,
  startHostProcess,
  startRelayProcess,
  startStreamTarget,
  type StreamTarget,
  testSecret,
  token
} from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as http from "node:http"

const hostId = "acme:stream"

interface Setup {
  readonly relay: RelayProcess
  readonly agentPid: number
  readonly target: StreamTarget
  readonly t: string
  readonly base: string
}

const setup = (
  options: { readonly relayArgs?: ReadonlyArray<string>; readonly hostArgs?: ReadonlyArray<string>; readonly relayEnv?: Record<string, string> } = {}
) =>
  Effect.gen(function*() {
    const relay = yield* startRelayProcess({ env: { RELAY_AUTH_SECRET: testSecret, ...options.relayEnv }, args: options.relayArgs ?? [] })
    const target = yield* startStreamTarget
    const t = yield* token({ org: "acme" })
    const agent = yield* startHostProcess({
      args: ["--relay", relay.ws, "--host-id", hostId, "--target", target.url, "--tunnels", "1", ...(options.hostArgs ?? [])],
      env: { RELAY_TOKEN: t }
    })
    return { relay, agentPid: agent.pid, target, t, base: `${relay.http}/hosts/${hostId}` } satisfies Setup
  })

/** The protocol version the relay registered the tunnel with. */
const protocolOf = (relay: RelayProcess) => relay.logs.find((l) => l.message === "tunnel.registered")?.annotations.protocol

/** A GET whose response is handed over as soon as its head arrives. */
const get = (url: string, t: string) =>
  new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get(url, { headers: { authorization: `Bearer ${t}` } }, resolve).on("error", reject)
  })

/** Reads a whole response: its bytes' sha256 and count, and whether it ended complete. */
const drain = (res: http.IncomingMessage) =>
  new Promise<{ sha256: string; bytes: number; complete: boolean }>((resolve) => {
    const hash = createHash("sha256")
    let bytes = 0
    res.on("data", (chunk: Buffer) => {
      hash.update(chunk)
      bytes += chunk.length
    })
    res.on("error", () => {})
    res.on("close", () => resolve({ sha256: hash.digest("hex"), bytes, complete: res.complete }))
  })

/** A chunked POST of `size` pattern bytes, written as fast as the socket takes them; the target's `{size, sha256}`. */
const uploadPattern = (url: string, t: string, size: number) =>
  new Promise<{ size: number; sha256: string }>((resolve, reject) => {
    const req = http.request(url, { method: "POST", headers: { authorization: `Bearer ${t}`, "transfer-encoding": "chunked" } }, (res) => {
      let text = ""
      res.on("data", (c: Buffer) => (text += c.toString()))
      res.on("end", () => resolve(JSON.parse(text)))
    })
    req.on("error", reject)
    let sent = 0
    let index = 0
    const more = () => {
      while (sent < size) {
        const piece = patternChunk(index++, 64 * 1024)
        sent += piece.length
        if (!req.write(piece)) return req.once("drain", more)
      }
      req.end()
    }
    more()
  })

const timed = async <A>(f: () => Promise<A>) => {
  const start = performance.now()
  const value = await f()
  return { value, ms: performance.now() - start }
}

describe("tunnel protocol version 2 (relay and agent processes)", () => {
  it.scopedLive("server-sent events: every event reaches the client before the next one is written", () =>
    Effect.gen(function*() {
      const { base, relay, t, target } = yield* setup()
      expect(protocolOf(relay)).toBe(2)
      const arrivals = yield* Effect.promise(async () => {
        const res = await get(`${base}/sse?n=6&every=250`, t)
        expect(res.statusCode).toBe(200)
        expect(res.headers["content-type"]).toBe("text/event-stream")
        const seen: Array<{ index: number; writtenAt: number; at: number }> = []
        let text = ""
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString()
          let end: number
          while ((end = text.indexOf("\n\n")) !== -1) {
            const [index, writtenAt] = text.slice("data: ".length, end).split(" ").map(Number)
            seen.push({ index: index!, writtenAt: writtenAt!, at: Date.now() })
            text = text.slice(end + 2)
          }
        })
        await new Promise((resolve) => res.on("end", resolve))
        return seen
      })
      expect(arrivals.map((a) => a.index)).toEqual([0, 1, 2, 3, 4, 5])
      for (let i = 0; i + 1 < arrivals.length; i++) expect(arrivals[i]!.at).toBeLessThan(target.eventsWritten[i + 1]!)
      const lags = arrivals.map((a) => a.at - a.writtenAt).sort((a, b) => a - b)
      console.log(`sse: lag from write to client ${lags.join(", ")} ms`)
    }), 60_000)

  it.scopedLive("50 MiB download (declared length and chunked) and 50 MiB chunked upload arrive byte-identical", () =>
    Effect.gen(function*() {
      const { base, t } = yield* setup()
      const size = 50 * MiB
      const expected = patternSha256(size)
      for (const query of [`size=${size}`, `size=${size}&length=0`]) {
        const { ms, value } = yield* Effect.promise(() => timed(async () => drain(await get(`${base}/bytes?${query}`, t))))
        expect(value).toEqual({ sha256: expected, bytes: size, complete: true })
        console.log(`download ${query}: ${(size / MiB / (ms / 1000)).toFixed(0)} MiB/s`)
      }
      const { ms, value } = yield* Effect.promise(() => timed(() => uploadPattern(`${base}/upload`, t, size)))
      expect(value).toEqual({ size, sha256: expected })
      console.log(`upload: ${(size / MiB / (ms / 1000)).toFixed(0)} MiB/s`)
    }), 60_000)

  it.scopedLive("a client reading 1 MiB/s of a 200 MiB response: the target is paused (write returns false), relay and agent memory stay bounded", () =>
    Effect.gen(function*() {
      const { agentPid, base, relay, t, target } = yield* setup()
      const relayRss = sampleRss(relay.pid)
      const agentRss = sampleRss(agentPid)
      const before = { relay: relayRss.peak(), agent: agentRss.peak() }
      const received = yield* Effect.promise(async () => {
        const res = await get(`${base}/bytes?size=${200 * MiB}`, t)
        let bytes = 0
        res.on("data", (chunk: Buffer) => {
          bytes += chunk.length
          // 1 MiB/s: each chunk is followed by a pause as long as it takes to read at that rate.
          res.pause()
          setTimeout(() => res.resume(), (chunk.length / MiB) * 1000)
        })
        await new Promise((resolve) => setTimeout(resolve, 4000))
        res.destroy()
        return bytes
      })
      relayRss.stop()
      agentRss.stop()
      const growth = { relay: (relayRss.peak() - before.relay) / MiB, agent: (agentRss.peak() - before.agent) / MiB }
      console.log(
        `slow reader: client read ${(received / MiB).toFixed(1)} MiB in 4 s, target wrote ${(target.bytesWritten() / MiB).toFixed(1)} MiB and was refused ${target.writesRefused()} times; peak RSS growth relay ${growth.relay.toFixed(1)} MiB, agent ${growth.agent.toFixed(1)} MiB`
      )
      expect(target.writesRefused()).toBeGreaterThan(0)
      // What the target got out is what the client read plus the windows and socket buffers between.
      expect(target.bytesWritten()).toBeLessThan(received + 32 * MiB)
      expect(growth.relay).toBeLessThan(32)
      expect(growth.agent).toBeLessThan(32)
    }), 60_000)

  it.scopedLive("a WebSocket client that stops reading while the target sends: the target is held back, relay and agent memory stay bounded", () =>
    Effect.gen(function*() {
      const { agentPid, relay, t, target } = yield* setup()
      const relayRss = sampleRss(relay.pid)
      const agentRss = sampleRss(agentPid)
      const before = { relay: relayRss.peak(), agent: agentRss.peak() }
      const socket = yield* openSocket(`${relay.ws}/hosts/${hostId}/ws-flood`, { authorization: `Bearer ${t}` })
      yield* Effect.promise(() => socket.waitFrames(10))
      // The client stops reading its socket: bytes pile up in the kernel, then in the relay, then stop.
      ;(socket.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
      yield* Effect.sleep("2 seconds")
      const sentAt2s = target.wsSent()
      yield* Effect.sleep("2 seconds")
      const sentAt4s = target.wsSent()
      relayRss.stop()
      agentRss.stop()
      const growth = { relay: (relayRss.peak() - before.relay) / MiB, agent: (agentRss.peak() - before.agent) / MiB }
      console.log(`ws flood into a reader that stopped: target sent ${sentAt2s} messages by 2 s and ${sentAt4s} by 4 s; peak RSS growth relay ${growth.relay.toFixed(1)} MiB, agent ${growth.agent.toFixed(1)} MiB`)
      expect(sentAt4s - sentAt2s).toBeLessThanOrEqual(2)
      expect(growth.relay).toBeLessThan(32)
      expect(growth.agent).toBeLessThan(32)
    }), 60_000)

  it.scopedLive("a WebSocket client that takes nothing for SEND_TIMEOUT_MS while messages wait is closed 1013; the target's socket is released", () =>
    Effect.gen(function*() {
      const { relay, t } = yield* setup({ relayEnv: { SEND_TIMEOUT_MS: "1500" } })
      const socket = yield* openSocket(`${relay.ws}/hosts/${hostId}/ws-flood`, { authorization: `Bearer ${t}` })
      yield* Effect.promise(() => socket.waitFrames(5))
      const stoppedAt = Date.now()
      ;(socket.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
      const slow = yield* Effect.promise(() => relay.waitForLog("tunnel.channel_too_slow", 10_000))
      const afterMs = Date.now() - stoppedAt
      console.log(`ws reader that stopped: closed 1013 after ${afterMs} ms (SEND_TIMEOUT_MS 1500), ${slow.annotations.bufferedBytes} bytes queued for it`)
      expect(afterMs).toBeGreaterThanOrEqual(1400)
      expect(afterMs).toBeLessThan(6000)
    }), 60_000)

  it.scopedLive("a client that goes away mid-download stops the target's response, and the tunnel serves the next request", () =>
    Effect.gen(function*() {
      const { base, t, target } = yield* setup()
      yield* Effect.promise(async () => {
        const res = await get(`${base}/bytes?size=${1024 * MiB}`, t)
        let bytes = 0
        await new Promise<void>((resolve) =>
          res.on("data", (chunk: Buffer) => {
            bytes += chunk.length
            if (bytes > 5 * MiB) {
              res.destroy()
              resolve()
            }
          })
        )
      })
      const deadline = Date.now() + 5000
      while (target.abandoned() === 0 && Date.now() < deadline) yield* Effect.sleep("20 millis")
      expect(target.abandoned()).toBe(1)
      expect(target.bytesWritten()).toBeLessThan(100 * MiB)
      const next = yield* Effect.promise(async () => {
        const res = await get(`${base}/small`, t)
        return { status: res.statusCode, body: (await drain(res)).bytes }
      })
      expect(next).toEqual({ status: 200, body: 2 })
    }), 60_000)

  it.scopedLive("a target that fails mid-body leaves the client with a failed response, not a short complete one", () =>
    Effect.gen(function*() {
      const { base, t } = yield* setup()
      const outcome = yield* Effect.promise(async () => {
        const res = await get(`${base}/fail?after=100000`, t)
        return { status: res.statusCode, ...(await drain(res)) }
      })
      expect(outcome.status).toBe(200)
      expect(outcome.complete).toBe(false)
      expect(outcome.bytes).toBeLessThan(1_000_000)
      const next = yield* Effect.promise(async () => (await get(`${base}/small`, t)).statusCode)
      expect(next).toBe(200)
    }), 60_000)

  it.scopedLive("a busy tunnel's answers do not use up its frame budget: small GETs at several times the frame rate for 3 s, all answered, never paused or closed", () =>
    Effect.gen(function*() {
      // 3 frames per answer (head, body, end): the rate alone would allow ~100 requests a second.
      const { base, relay, t } = yield* setup({ relayEnv: { TUNNEL_FRAMES_PER_SECOND: "300", TUNNEL_FRAME_BURST: "600", TUNNEL_FLOOD_CLOSE_MS: "1000" } })
      const agent = new http.Agent({ keepAlive: true })
      const statuses = yield* Effect.promise(async () => {
        const seen: Array<number> = []
        const until = Date.now() + 3000
        const one = () =>
          new Promise<number>((resolve) => {
            http.get(`${base}/small`, { agent, headers: { authorization: `Bearer ${t}` } }, (res) => {
              res.resume()
              res.on("end", () => resolve(res.statusCode ?? 0))
            }).on("error", () => resolve(0))
          })
        await Promise.all(Array.from({ length: 8 }, async () => {
          while (Date.now() < until) seen.push(await one())
        }))
        return seen
      })
      agent.destroy()
      const metrics = yield* Effect.promise(() => fetch(`${relay.http}/metrics`).then((r) => r.text()))
      const pauses = Number(/relay_limit_hits_total\{limit="tunnel_frame_rate"\} (\d+)/.exec(metrics)?.[1] ?? 0)
      console.log(`busy tunnel: ${statuses.length} small GETs in 3 s at a frame rate of 300/s, ${pauses} pauses`)
      expect(statuses.filter((s) => s !== 200)).toEqual([])
      // More than the rate and the bucket together would have let through (300 + 3 x 300 frames).
      expect(statuses.length).toBeGreaterThan(400)
      expect(pauses).toBe(0)
      expect(relay.logs.some((l) => l.message === "tunnel.flood_closed")).toBe(false)
    }), 60_000)

  it.scopedLive("a small request during a large download on the same tunnel answers within 50 ms", () =>
    Effect.gen(function*() {
      const { base, t } = yield* setup()
      const times = yield* Effect.promise(async () => {
        const big = await get(`${base}/bytes?size=${1024 * MiB}&fast=1`, t)
        let bytes = 0
        big.on("data", (chunk: Buffer) => (bytes += chunk.length))
        // Under way at full speed first.
        while (bytes < 20 * MiB) await new Promise((resolve) => setTimeout(resolve, 10))
        const ms: Array<number> = []
        for (let i = 0; i < 10; i++) {
          const { ms: one } = await timed(async () => drain(await get(`${base}/small`, t)))
          ms.push(one)
        }
        const stillFlowing = bytes
        await new Promise((resolve) => setTimeout(resolve, 50))
        big.destroy()
        return { ms, flowing: bytes > stillFlowing }
      })
      const sorted = [...times.ms].sort((a, b) => a - b)
      console.log(`small GETs during a large download: ${sorted.map((m) => m.toFixed(1)).join(", ")} ms`)
      expect(times.flowing).toBe(true)
      expect(sorted[sorted.length - 1]).toBeLessThan(50)
    }), 60_000)

  it.scopedLive("through a relay that does not hold the host (proxied to the one that does): a 50 MiB chunked upload and a 50 MiB download stream, byte-identical", () =>
    Effect.gen(function*() {
      const { prefix } = yield* redisPrefix("stream-proxy")
      const env = (machineId: string) => ({
        RELAY_AUTH_SECRET: testSecret,
        REDIS_URL: redisUrl(),
        REDIS_KEY_PREFIX: prefix,
        RELAY_PEER_SECRET: "stream-proxy-peer-secret-0123456789",
        REGION: "iad",
        MACHINE_ID: machineId,
        ROUTING: "proxy"
      })
      const owner = yield* startRelayProcess({ env: env("a") })
      const front = yield* startRelayProcess({ env: env("b") })
      const target = yield* startStreamTarget
      const t = yield* token({ org: "acme" })
      yield* startHostProcess({ args: ["--relay", owner.ws, "--host-id", hostId, "--target", target.url, "--tunnels", "1"], env: { RELAY_TOKEN: t } })
      const base = `${front.http}/hosts/${hostId}`
      const size = 50 * MiB
      const expected = patternSha256(size)
      const download = yield* Effect.promise(async () => drain(await get(`${base}/bytes?size=${size}`, t)))
      expect(download).toEqual({ sha256: expected, bytes: size, complete: true })
      const upload = yield* Effect.promise(() => uploadPattern(`${base}/upload`, t, size))
      expect(upload).toEqual({ size, sha256: expected })
      const metrics = yield* Effect.promise(() => fetch(`${front.http}/metrics`).then((r) => r.text()))
      expect(Number(/relay_routed_total\{mode="proxy"\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(2)
    }), 60_000)

  for (const [name, options, version] of [
    ["an agent that speaks only version 1 with a relay that speaks both", { hostArgs: ["--no-protocol-v2"] }, 1],
    ["an agent of this release with a relay that speaks only version 1", { relayArgs: ["--no-protocol-v2"] }, 1],
    ["an agent and a relay of this release", {}, 2]
  ] as const) {
    it.scopedLive(`${name}: version ${version}, HTTP and WebSockets work`, () =>
      Effect.gen(function*() {
        const { base, relay, t } = yield* setup(options)
        expect(protocolOf(relay)).toBe(version)
        const download = yield* Effect.promise(async () => drain(await get(`${base}/bytes?size=${3 * MiB}`, t)))
        expect(download).toEqual({ sha256: patternSha256(3 * MiB), bytes: 3 * MiB, complete: true })
        const socket = yield* openSocket(`${relay.ws}/hosts/${hostId}/echo`, { authorization: `Bearer ${t}` })
        socket.ws.send("hello")
        socket.ws.send(Buffer.from([1, 2, 3]))
        yield* Effect.promise(() => socket.waitFrames(2))
        expect(socket.frames.map((f) => (f.binary ? [...(f.data as Buffer)] : f.data))).toEqual(["hello", [1, 2, 3]])
      }), 60_000)
  }
})
