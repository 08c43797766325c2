import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as http from "node:http"
import { type WebSocket, WebSocketServer } from "ws"
import { closeServer } from "./CloseServer.js"

/**
 * A local service for streaming tests, on 127.0.0.1 with a free port. It writes and reads bodies
 * piece by piece and says what it saw: when each piece went out, whether its socket pushed back,
 * whether its client went away.
 */
export interface StreamTarget {
  readonly port: number
  readonly url: string
  /** `/sse`: when each event was written (ms, `Date.now()`). */
  readonly eventsWritten: Array<number>
  /** `/bytes`: times `res.write` returned false (the socket pushed back). */
  readonly writesRefused: () => number
  /** `/bytes`: bytes the target has written so far. */
  readonly bytesWritten: () => number
  /** Responses whose client went away before the end (`res` closed unfinished). */
  readonly abandoned: () => number
  /** `/ws-flood`: bytes the target's WebSocket has queued and not sent (its backpressure). */
  readonly wsQueued: () => number
  /** `/ws-flood`: messages sent so far. */
  readonly wsSent: () => number
}

/** Deterministic bytes: piece `i` of a body is a function of `i` alone, so a client can check it. */
export const patternChunk = (index: number, size: number): Buffer => {
  const chunk = Buffer.allocUnsafe(size)
  let x = (index * 2654435761) >>> 0
  for (let i = 0; i < size; i += 4) {
    x = (x * 1664525 + 1013904223) >>> 0
    chunk.writeUInt32LE(x, i)
  }
  return chunk
}

const fastChunk = Buffer.alloc(64 * 1024, 97)

/** The sha256 of `/bytes?size=N` (pieces of 64 KiB made by `patternChunk`). */
export const patternSha256 = (size: number): string => {
  const hash = createHash("sha256")
  let sent = 0
  for (let i = 0; sent < size; i++) {
    const n = Math.min(64 * 1024, size - sent)
    hash.update(patternChunk(i, 64 * 1024).subarray(0, n))
    sent += n
  }
  return hash.digest("hex")
}

/**
 * Routes:
 * - `GET /sse?n=N&every=MS`: `text/event-stream`, N events `data: <i> <written-at>` one every MS.
 * - `GET /bytes?size=N[&length=0][&fast=1]`: N pattern bytes in 64 KiB pieces, each written when the
 *   socket takes the last (so a slow client makes `write` return false); with `length=0` no
 *   Content-Length; with `fast=1` one piece repeated (not the pattern).
 * - `GET /fail?after=N`: a 200 that promises more, writes N bytes, then destroys the socket.
 * - `POST /upload`: reads the body and answers `{size, sha256}`.
 * - `GET /small`: "ok".
 * - WebSocket `/ws-flood`: sends 64 KiB binary messages as fast as its socket takes them, forever.
 * - WebSocket elsewhere: echoes.
 */
export const startStreamTarget = Effect.acquireRelease(
  Effect.async<{ server: http.Server; wss: WebSocketServer; target: StreamTarget }>((resume) => {
    const eventsWritten: Array<number> = []
    let writesRefused = 0
    let bytesWritten = 0
    let abandoned = 0
    let wsQueued = 0
    let wsSent = 0
    const server = http.createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x")
      res.on("close", () => {
        if (!res.writableFinished) abandoned++
      })
      if (url.pathname === "/sse") {
        const n = Number(url.searchParams.get("n") ?? 5)
        const every = Number(url.searchParams.get("every") ?? 200)
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
        let i = 0
        const tick = () => {
          if (res.destroyed) return
          const at = Date.now()
          eventsWritten.push(at)
          res.write(`data: ${i} ${at}\n\n`)
          if (++i < n) setTimeout(tick, every)
          else res.end()
        }
        setTimeout(tick, every)
        return
      }
      if (url.pathname === "/bytes") {
        const size = Number(url.searchParams.get("size") ?? 0)
        res.writeHead(200, { "content-type": "application/octet-stream", ...(url.searchParams.get("length") === "0" ? {} : { "content-length": size }) })
        // `fast=1`: the same 64 KiB over and over, costing the target nothing (a throughput or latency measure).
        const fast = url.searchParams.get("fast") === "1"
        let sent = 0
        let index = 0
        const more = () => {
          while (sent < size && !res.destroyed) {
            const n = Math.min(64 * 1024, size - sent)
            const ok = res.write((fast ? fastChunk : patternChunk(index++, 64 * 1024)).subarray(0, n))
            sent += n
            bytesWritten += n
            if (!ok) {
              writesRefused++
              return res.once("drain", more)
            }
          }
          if (sent >= size) res.end()
        }
        more()
        return
      }
      if (url.pathname === "/fail") {
        const after = Number(url.searchParams.get("after") ?? 1000)
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": after * 10 })
        res.write(Buffer.alloc(after, 120), () => setTimeout(() => res.socket?.destroy(), 50))
        return
      }
      if (url.pathname === "/upload") {
        const hash = createHash("sha256")
        let size = 0
        req.on("data", (chunk: Buffer) => {
          size += chunk.length
          hash.update(chunk)
        })
        req.on("end", () => {
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({ size, sha256: hash.digest("hex") }))
        })
        return
      }
      res.writeHead(200, { "content-type": "text/plain" })
      res.end("ok")
    })
    const wss = new WebSocketServer({ server })
    const sockets = new Set<WebSocket>()
    wss.on("connection", (ws, req) => {
      sockets.add(ws)
      ws.on("close", () => sockets.delete(ws))
      if ((req.url ?? "").startsWith("/ws-flood")) {
        const payload = Buffer.alloc(64 * 1024, 7)
        const flood = () => {
          if (ws.readyState !== ws.OPEN) return
          // Send while the socket takes it: a reader that stops makes the target wait.
          while (ws.bufferedAmount < 1024 * 1024 && ws.readyState === ws.OPEN) {
            ws.send(payload)
            wsSent++
          }
          wsQueued = ws.bufferedAmount
          setTimeout(flood, 5)
        }
        flood()
        return
      }
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }))
    })
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port
      resume(Effect.succeed({
        server,
        wss,
        target: {
          port,
          url: `http://127.0.0.1:${port}`,
          eventsWritten,
          writesRefused: () => writesRefused,
          bytesWritten: () => bytesWritten,
          abandoned: () => abandoned,
          wsQueued: () => wsQueued,
          wsSent: () => wsSent
        }
      }))
    })
  }),
  ({ server, wss }) => closeServer(server, wss)
).pipe(Effect.map(({ target }) => target))
