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
  startRelayProcess,
  testSecret,
  token
} from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as net from "node:net"
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
      const flooder = spawn(process.execPath, [floodHost, relay.ws, "acme:flood", t, "4", "pong"], { stdio: ["ignore", "pipe", "inherit"] })
      yield* Effect.addFinalizer(() => Effect.sync(() => flooder.kill("SIGKILL")))
      let report = ""
      flooder.stdout!.on("data", (d) => (report += d.toString()))
      yield* Effect.promise(() => new Promise<void>((resolve) => flooder.on("exit", () => resolve())))
      const closed = yield* Effect.promise(() => relay.waitForLog("tunnel.flood_closed"))
      expect(closed.annotations.hostId).toBe("acme:flood")
      expect(JSON.parse(report.trim().split("\n").at(-1)!).closed).toBe(CloseCodes.Policy)
    }), 30_000)
})
