/**
 * What the network sends cannot make the relay's log large: fields that come from a peer are cut
 * to 200 characters (with their length), and events a peer can repeat are logged a few at a time
 * with a count of those left out.
 */
import { fakeHost, messageOf, startRelayProcess, testSecret, token } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as net from "node:net"

const logBytes = (relay: { readonly output: () => { readonly stdout: string; readonly stderr: string } }) =>
  relay.output().stdout.length + relay.output().stderr.length

describe("log bounds", () => {
  it.scopedLive("500 refused upgrades carrying an 8 KB hostId, and a tenant's frame with a 10 MB field, add only a few KB of log", () =>
    Effect.gen(function*() {
      const relay = yield* startRelayProcess({ env: { RELAY_AUTH_SECRET: testSecret } })
      const before = logBytes(relay)
      const hostId = `acme:${"h".repeat(8 * 1024)}`
      const upgrade = () =>
        new Promise<string>((resolve) => {
          const socket = net.connect(relay.port, "127.0.0.1")
          let data = ""
          socket.on("data", (d) => (data += d.toString()))
          socket.on("error", () => {})
          socket.on("close", () => resolve(data.split("\r\n")[0]!))
          socket.write(
            `GET /tunnel?hostId=${hostId} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
          )
        })
      const statuses: Array<string> = []
      for (let batch = 0; batch < 10; batch++) statuses.push(...(yield* Effect.promise(() => Promise.all(Array.from({ length: 50 }, upgrade)))))
      const refusals = logBytes(relay) - before
      const t = yield* token({ org: "acme" })
      const host = yield* fakeHost(relay.ws, "acme:noisy", t)
      yield* Effect.promise(() => relay.waitForLog("tunnel.registered"))
      const beforeFrames = logBytes(relay)
      host.sendRaw(JSON.stringify({ type: "http:response", id: "1", status: "x".repeat(10 * 1024 * 1024), headers: {} }))
      for (let i = 0; i < 200; i++) host.sendRaw(JSON.stringify({ type: "x".repeat(100_000) }))
      while (!relay.logs.some((l) => messageOf(l) === "tunnel.bad_frame")) yield* Effect.sleep("20 millis")
      yield* Effect.sleep("300 millis")
      const frames = logBytes(relay) - beforeFrames
      const longest = Math.max(...relay.output().stdout.split("\n").map((line) => line.length))
      console.log(`log bounds: 500 refused upgrades -> +${refusals} bytes of log; 201 bad frames with 10 MB / 100 KB fields -> +${frames} bytes; longest line ${longest} chars`)
      expect(statuses).toHaveLength(500)
      for (const status of statuses) expect(status).toBe("HTTP/1.1 400 Bad Request")
      expect(refusals).toBeGreaterThan(0)
      expect(refusals).toBeLessThan(64 * 1024)
      expect(frames).toBeLessThan(16 * 1024)
      expect(longest).toBeLessThan(2048)
    }), 30_000)
})
