/**
 * A relay process under attack, as a stranger and as a tenant: it must not grow, crash or stall
 * for anyone else. Figures are printed so a run shows how far inside its bounds it stayed.
 */
import { CloseCodes } from "@effect-relay/protocol"
import {
  fakeHost,
  MiB,
  okResponse,
  type RelayProcess,
  rssBytes,
  sampleRss,
  startHostProcess,
  startRelayProcess,
  startTarget,
  testSecret,
  token
} from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as http from "node:http"
import * as net from "node:net"
import WebSocket, { WebSocketServer } from "ws"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const floodHost = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../testkit/src/children/flood-host.mjs")

const relayEnv = (extra: Record<string, string> = {}) => ({ RELAY_AUTH_SECRET: testSecret, LOG_LEVEL: "info", ...extra })

/** A host of org `quiet` answering every request at once, and a way to time one request to it. */
const quietHost = (relay: RelayProcess) =>
  Effect.gen(function*() {
    const t = yield* token({ org: "quiet" })
    yield* fakeHost(relay.ws, "quiet:h", t, (req) => okResponse(req.id, "quiet"))
    yield* Effect.promise(() => relay.waitForLog("tunnel.registered"))
    const timed = async () => {
      const start = performance.now()
      const res = await fetch(`${relay.http}/hosts/quiet:h/x`, { headers: { authorization: `Bearer ${t}` }, signal: AbortSignal.timeout(15_000) })
      const body = await res.text()
      return { ms: performance.now() - start, status: res.status, body }
    }
    return { timed }
  })

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/** One WebSocket frame header for a masked binary frame of `length` bytes (the payload follows). */
const frameHeader = (length: number) => {
  const header = Buffer.alloc(14)
  header[0] = 0x82
  header[1] = 0x80 | 127
  header.writeBigUInt64BE(BigInt(length), 2)
  return header // the 4 mask bytes are zero
}

describe("hostile peers against a relay process", () => {
  it.scopedLive("a stranger streaming 8 MB frames at /tunnel without a token for 10 s: refused before any upgrade, RSS grows under 50 MB, others served", () =>
    Effect.gen(function*() {
      const relay = yield* startRelayProcess({ env: relayEnv() })
      const quiet = yield* quietHost(relay)
      yield* Effect.promise(() => quiet.timed())
      const before = rssBytes(relay.pid)!
      const rss = sampleRss(relay.pid)
      const payload = Buffer.alloc(8 * MiB, 0x61)
      const statuses: Array<string> = []
      let sentBytes = 0
      const attack = async (until: number) => {
        while (Date.now() < until) {
          await new Promise<void>((resolve) => {
            const socket = net.connect(relay.port, "127.0.0.1")
            socket.on("error", () => {})
            socket.on("data", (d) => statuses.push(d.toString().split("\r\n")[0]!))
            socket.on("close", () => resolve())
            socket.on("connect", () => {
              socket.write(
                "GET /tunnel?hostId=acme:x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
              )
              // Frames as fast as the socket takes them, ignoring every answer.
              const pump = () => {
                while (!socket.destroyed && Date.now() < until) {
                  sentBytes += payload.length
                  if (!socket.write(frameHeader(payload.length)) || !socket.write(payload)) return void socket.once("drain", pump)
                }
                socket.destroy()
              }
              pump()
            })
          })
        }
      }
      const during: Array<number> = []
      const until = Date.now() + 10_000
      yield* Effect.promise(() =>
        Promise.all([
          attack(until),
          (async () => {
            while (Date.now() < until) {
              const r = await quiet.timed()
              expect(r.status).toBe(200)
              during.push(r.ms)
              await new Promise((resolve) => setTimeout(resolve, 250))
            }
          })()
        ])
      )
      rss.stop()
      const growth = rss.peak() - before
      console.log(
        `stranger flood: ${(sentBytes / MiB).toFixed(0)} MiB offered, RSS ${(before / MiB).toFixed(0)} -> peak ${(rss.peak() / MiB).toFixed(0)} MiB, ` +
          `other tenant p99 ${percentile(during, 99).toFixed(1)} ms over ${during.length} requests, answers: ${[...new Set(statuses)].join(" | ")}`
      )
      expect(statuses.length).toBeGreaterThan(0)
      for (const status of statuses) expect(status).toBe("HTTP/1.1 401 Unauthorized")
      expect(growth).toBeLessThan(50 * MiB)
      expect(relay.child.exitCode).toBeNull()
    }), 40_000)

  it.scopedLive("a tenant's host flooding pong, unknown and non-JSON frames for 5 s: another org's requests all succeed with p99 under 50 ms, the log grows under 1 MB, and the flood is paused", () =>
    Effect.gen(function*() {
      const relay = yield* startRelayProcess({ env: relayEnv() })
      const quiet = yield* quietHost(relay)
      for (let i = 0; i < 5; i++) yield* Effect.promise(() => quiet.timed())
      const logBefore = relay.output().stdout.length + relay.output().stderr.length
      const t = yield* token({ org: "acme" })
      const flooder = spawn(process.execPath, [floodHost, relay.ws, "acme:flood", t, "5", "pong,unknown,garbage"], { stdio: ["ignore", "pipe", "inherit"] })
      yield* Effect.addFinalizer(() => Effect.sync(() => flooder.kill("SIGKILL")))
      let report = ""
      flooder.stdout!.on("data", (d) => (report += d.toString()))
      const done = new Promise<void>((resolve) => flooder.on("exit", () => resolve()))
      yield* Effect.promise(() => new Promise<void>((resolve) => flooder.stdout!.once("data", () => resolve())))
      const latencies: Array<number> = []
      const statuses: Array<number> = []
      const until = Date.now() + 5_000
      while (Date.now() < until) {
        const r = yield* Effect.promise(() => quiet.timed())
        latencies.push(r.ms)
        statuses.push(r.status)
        yield* Effect.sleep("20 millis")
      }
      yield* Effect.promise(() => done)
      const sent = JSON.parse(report.trim().split("\n").at(-1)!).sent as number
      const logGrowth = relay.output().stdout.length + relay.output().stderr.length - logBefore
      const metrics = yield* Effect.promise(() => fetch(`${relay.http}/metrics`).then((r) => r.text()))
      const pauses = Number(/relay_limit_hits_total\{limit="tunnel_frame_rate"\} (\d+)/.exec(metrics)?.[1] ?? 0)
      console.log(
        `tenant flood: ${sent} frames sent in 5 s; other org: ${latencies.length} requests, p50 ${percentile(latencies, 50).toFixed(1)} ms, ` +
          `p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms; log +${logGrowth} bytes; ${pauses} pauses`
      )
      expect(statuses.every((s) => s === 200)).toBe(true)
      expect(latencies.length).toBeGreaterThan(50)
      expect(percentile(latencies, 99)).toBeLessThan(50)
      expect(logGrowth).toBeLessThan(1024 * 1024)
      expect(pauses).toBeGreaterThan(0)
    }), 40_000)

  it.scopedLive("a host kept over its frame rate past TUNNEL_FLOOD_CLOSE_MS is closed 1008", () =>
    Effect.gen(function*() {
      const relay = yield* startRelayProcess({
        env: relayEnv({ TUNNEL_FRAMES_PER_SECOND: "200", TUNNEL_FRAME_BURST: "400", TUNNEL_FLOOD_CLOSE_MS: "1000" })
      })
      const t = yield* token({ org: "acme" })
      // Flooded until the relay closes it (at most 15 s): on a busy machine the close may come late.
      const flooder = spawn(process.execPath, [floodHost, relay.ws, "acme:flood", t, "15", "pong"], { stdio: ["ignore", "pipe", "inherit"] })
      yield* Effect.addFinalizer(() => Effect.sync(() => flooder.kill("SIGKILL")))
      let report = ""
      flooder.stdout!.on("data", (d) => (report += d.toString()))
      yield* Effect.promise(() => new Promise<void>((resolve) => flooder.on("exit", () => resolve())))
      const closed = yield* Effect.promise(() => relay.waitForLog("tunnel.flood_closed"))
      expect(closed.annotations.hostId).toBe("acme:flood")
      expect(JSON.parse(report.trim().split("\n").at(-1)!).closed).toBe(CloseCodes.Policy)
    }), 30_000)

  // Version 1's bounds (agents of earlier releases speak it): version 2 paces channels with credit
  // instead, tested in Streaming.timing.test.ts.
  it.scopedLive("a WebSocket client that never reads while a version 1 host agent streams to it: the channel closes 1013 and the relay's RSS stays bounded; a client flooding a target that stopped reading is closed 1013 too", () =>
    Effect.gen(function*() {
      const relay = yield* startRelayProcess({ env: relayEnv() })
      // A target that streams 64 KiB frames as fast as its socket takes them (it respects its own
      // backpressure), and on /sink reads nothing at all.
      const closes: Array<number> = []
      const target = yield* Effect.acquireRelease(
        Effect.async<{ server: http.Server; port: number }>((resume) => {
          const server = http.createServer()
          const wss = new WebSocketServer({ server, perMessageDeflate: false })
          wss.on("connection", (ws, req) => {
            ws.on("error", () => {})
            ws.on("close", (code) => closes.push(code))
            if (req.url?.startsWith("/sink")) return void (ws as unknown as { _socket: net.Socket })._socket.pause()
            const chunk = Buffer.alloc(64 * 1024, 0x62)
            const pump = () => {
              while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < MiB) ws.send(chunk)
              if (ws.readyState === WebSocket.OPEN) setTimeout(pump, 5)
            }
            pump()
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, port: (server.address() as net.AddressInfo).port })))
        }),
        ({ server }) => Effect.sync(() => {
          server.closeAllConnections()
          server.close()
        })
      )
      const t = yield* token({ org: "acme" })
      yield* startHostProcess({
        args: ["--relay", relay.ws, "--host-id", "acme:stream", "--target", `http://127.0.0.1:${target.port}`, "--no-protocol-v2"],
        env: { RELAY_TOKEN: t }
      })
      const before = rssBytes(relay.pid)!
      const rss = sampleRss(relay.pid)

      // 1. Host -> client: the client's socket is paused right after the upgrade.
      const reader = new WebSocket(`${relay.ws}/hosts/acme:stream/feed`, { headers: { authorization: `Bearer ${t}` }, perMessageDeflate: false })
      reader.on("error", () => {})
      yield* Effect.promise(() => new Promise<void>((resolve) => reader.once("open", () => resolve())))
      ;(reader as unknown as { _socket: net.Socket })._socket.pause()
      const slow = yield* Effect.promise(() => relay.waitForLog("tunnel.channel_too_slow", 15_000))
      while (!closes.includes(CloseCodes.TryAgainLater)) yield* Effect.sleep("20 millis")

      // 2. Client -> host: the client sends as fast as its socket takes frames; the target reads nothing.
      const writer = new WebSocket(`${relay.ws}/hosts/acme:stream/sink`, { headers: { authorization: `Bearer ${t}` }, perMessageDeflate: false })
      writer.on("error", () => {})
      const writerClosed = new Promise<number>((resolve) => writer.on("close", (code) => resolve(code)))
      yield* Effect.promise(() => new Promise<void>((resolve) => writer.once("open", () => resolve())))
      const chunk = Buffer.alloc(64 * 1024, 0x63)
      let offered = 0
      const flood = () => {
        while (writer.readyState === WebSocket.OPEN && writer.bufferedAmount < MiB) {
          writer.send(chunk)
          offered += chunk.length
        }
        if (writer.readyState === WebSocket.OPEN) setTimeout(flood, 5)
      }
      flood()
      const writerCode = yield* Effect.promise(() => Promise.race([writerClosed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 20_000))]))
      rss.stop()
      reader.terminate()
      writer.terminate()
      const growth = rss.peak() - before
      console.log(
        `WebSocket channels: host->client closed 1013 with ${slow.annotations.bufferedBytes} bytes queued; client->host closed ${writerCode} ` +
          `after ${(offered / MiB).toFixed(0)} MiB offered; relay RSS ${(before / MiB).toFixed(0)} -> peak ${(rss.peak() / MiB).toFixed(0)} MiB`
      )
      expect(writerCode).toBe(CloseCodes.TryAgainLater)
      expect(growth).toBeLessThan(64 * MiB)
    }), 60_000)

  it.scopedLive("50 concurrent 9.9 MiB uploads: RSS stays under 4 x BODY_BUDGET_BYTES above idle, every answer is 200 or 503 busy, and another tenant is served meanwhile", () =>
    Effect.gen(function*() {
      const budget = 64 * MiB
      const relay = yield* startRelayProcess({ env: relayEnv({ BODY_BUDGET_BYTES: String(budget) }) })
      const target = yield* startTarget
      const t = yield* token({ org: "acme" })
      yield* startHostProcess({ args: ["--relay", relay.ws, "--host-id", "acme:uploads", "--target", target.url], env: { RELAY_TOKEN: t } })
      const quiet = yield* quietHost(relay)
      yield* Effect.promise(() => quiet.timed())
      const before = rssBytes(relay.pid)!
      const rss = sampleRss(relay.pid)
      const body = Buffer.alloc(Math.floor(9.9 * MiB), 0x64)
      const uploads = Array.from({ length: 50 }, () =>
        fetch(`${relay.http}/hosts/acme:uploads/status/200`, {
          method: "POST",
          headers: { authorization: `Bearer ${t}`, "content-type": "application/octet-stream" },
          body,
          signal: AbortSignal.timeout(60_000)
        }).then(async (res) => ({ status: res.status, error: res.status === 200 ? "" : ((await res.json()) as { error: string }).error }))
      )
      const others: Array<{ ms: number; status: number }> = []
      let uploading = true
      const meanwhile = (async () => {
        while (uploading) {
          others.push(await quiet.timed())
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      })()
      const results = yield* Effect.promise(() => Promise.all(uploads))
      uploading = false
      yield* Effect.promise(() => meanwhile)
      rss.stop()
      const ok = results.filter((r) => r.status === 200).length
      const busy = results.filter((r) => r.status === 503 && r.error === "busy").length
      const growth = rss.peak() - before
      console.log(
        `50 x 9.9 MiB uploads: ${ok} answered 200, ${busy} 503 busy; relay RSS ${(before / MiB).toFixed(0)} -> peak ${(rss.peak() / MiB).toFixed(0)} MiB ` +
          `(bound +${(4 * budget) / MiB} MiB); other tenant ${others.length} requests, max ${Math.max(...others.map((o) => o.ms)).toFixed(0)} ms`
      )
      expect(ok + busy).toBe(50)
      expect(ok).toBeGreaterThan(0)
      expect(growth).toBeLessThan(4 * budget)
      expect(others.length).toBeGreaterThan(0)
      expect(others.every((o) => o.status === 200)).toBe(true)
    }), 90_000)

  it.scopedLive("30 clients that never read their 9 MB responses are cut after SEND_TIMEOUT_MS", () =>
    Effect.gen(function*() {
      // Budgets room enough for every response: this is about the send timeout.
      const relay = yield* startRelayProcess({
        env: relayEnv({ SEND_TIMEOUT_MS: "2000", BODY_BUDGET_BYTES: String(512 * MiB), TUNNEL_BODY_BUDGET_BYTES: String(512 * MiB) })
      })
      const t = yield* token({ org: "acme" })
      const big = Buffer.alloc(9 * 1000 * 1000, 0x65).toString("base64")
      yield* fakeHost(relay.ws, "acme:big", t, (req) => ({ _tag: "http:response", id: req.id, status: 200, headers: {}, body: big, bodyEncoding: "base64" }))
      yield* Effect.promise(() => relay.waitForLog("tunnel.registered"))
      const before = rssBytes(relay.pid)!
      const clients = Array.from({ length: 30 }, () => {
        const socket = net.connect(relay.port, "127.0.0.1")
        socket.on("error", () => {})
        socket.pause()
        socket.write(`GET /hosts/acme:big/file HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\n\r\n`)
        const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
        return { socket, closed }
      })
      const metricCount = async () => {
        const text = await fetch(`${relay.http}/metrics`).then((r) => r.text())
        return Number(/relay_limit_hits_total\{limit="send_timeout"\} (\d+)/.exec(text)?.[1] ?? 0)
      }
      const start = Date.now()
      while ((yield* Effect.promise(metricCount)) < 30 && Date.now() - start < 20_000) yield* Effect.sleep("100 millis")
      const cutAfterMs = Date.now() - start
      const cut = yield* Effect.promise(metricCount)
      // Now read what made it: each connection ends before its 9 MB.
      const received = yield* Effect.promise(() =>
        Promise.all(clients.map(({ socket, closed }) => {
          let bytes = 0
          socket.on("data", (d: Buffer) => (bytes += d.length))
          socket.resume()
          return closed.then(() => bytes)
        }))
      )
      const after = rssBytes(relay.pid)!
      console.log(
        `30 non-reading clients: ${cut} cut by the send timeout within ${cutAfterMs} ms; each got at most ${(Math.max(...received) / MiB).toFixed(1)} MiB of 8.6; ` +
          `relay RSS ${(before / MiB).toFixed(0)} -> ${(after / MiB).toFixed(0)} MiB after`
      )
      expect(cut).toBe(30)
      for (const bytes of received) expect(bytes).toBeLessThan(9 * 1000 * 1000)
    }), 60_000)
})
