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

/**
 * Milliseconds since the epoch with sub-millisecond resolution, comparable between processes on one
 * machine (the process's time origin plus its monotonic clock): SSE events carry it, so a client
 * can tell how long an event took to reach it.
 */
export const wallClockMs = (): number => performance.timeOrigin + performance.now()

// --- The stamped pattern: known bytes that cost next to nothing to write and to check, for GiB bodies

/** Piece `i` of a stamped body is `stampedBase[i % 16]` with `i` written into its first 8 bytes. */
const stampedBase = Array.from({ length: 16 }, (_, i) => patternChunk(i, 64 * 1024))

/** Piece `index` (64 KiB) of a stamped body: a fresh buffer (a socket may still hold the last one). */
export const stampedPiece = (index: number): Buffer => {
  const piece = Buffer.allocUnsafe(64 * 1024)
  stampedBase[index % 16]!.copy(piece)
  piece.writeDoubleLE(index, 0)
  return piece
}

/**
 * Checks a stamped body as it arrives, in pieces of any size: every byte compared with what it must
 * be at its offset (a memcmp per piece, far cheaper than sha256 for a GiB), so a lost, doubled or
 * reordered piece is caught. `intact(size)` once it ended: all bytes right and exactly `size` of them.
 */
export const stampedCheck = () => {
  let offset = 0
  let wrongAt: number | undefined
  const stamp = Buffer.alloc(8)
  const update = (chunk: Buffer) => {
    let at = 0
    while (at < chunk.length && wrongAt === undefined) {
      const index = Math.floor(offset / (64 * 1024))
      const within = offset % (64 * 1024)
      const n = Math.min(chunk.length - at, 64 * 1024 - within)
      // The stamp (the piece's first 8 bytes), then the rest against the base piece.
      const stamped = Math.max(0, Math.min(n, 8 - within))
      if (stamped > 0) {
        stamp.writeDoubleLE(index, 0)
        if (chunk.compare(stamp, within, within + stamped, at, at + stamped) !== 0) wrongAt = offset
      }
      if (n > stamped && chunk.compare(stampedBase[index % 16]!, within + stamped, within + n, at + stamped, at + n) !== 0) wrongAt ??= offset
      at += n
      offset += n
    }
  }
  return {
    update,
    bytes: () => offset,
    /** Where the first stretch with a wrong byte starts, if any. */
    wrongAt: () => wrongAt,
    intact: (size: number) => wrongAt === undefined && offset === size
  }
}

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
 * - `GET /sse?n=N&every=MS`: `text/event-stream`, N events `data: <i> <written-at>` one every MS
 *   (`written-at`: `wallClockMs()`, 3 decimals).
 * - `GET /bytes?size=N[&length=0][&fast=1][&pattern=stamped]`: N pattern bytes in 64 KiB pieces, each
 *   written when the socket takes the last (so a slow client makes `write` return false); with
 *   `length=0` no Content-Length; with `fast=1` one piece repeated (not the pattern); with
 *   `pattern=stamped` the stamped pattern (`stampedPiece`, cheap enough for a GiB).
 * - `GET /fail?after=N`: a 200 that promises more, writes N bytes, then destroys the socket.
 * - `POST /upload`: reads the body and answers `{size, sha256}`; with `?check=stamped` it checks the
 *   body against the stamped pattern instead and answers `{size, intact}`.
 * - `POST /echo`: answers with the body it read (whole, with a Content-Length).
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
          const at = wallClockMs()
          eventsWritten.push(at)
          res.write(`data: ${i} ${at.toFixed(3)}\n\n`)
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
        const piece = fast
          ? () => fastChunk
          : url.searchParams.get("pattern") === "stamped"
          ? stampedPiece
          : (i: number) => patternChunk(i, 64 * 1024)
        let sent = 0
        let index = 0
        const more = () => {
          while (sent < size && !res.destroyed) {
            const n = Math.min(64 * 1024, size - sent)
            const ok = res.write(piece(index++).subarray(0, n))
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
      if (url.pathname === "/upload" && url.searchParams.get("check") === "stamped") {
        const check = stampedCheck()
        req.on("data", check.update)
        req.on("end", () => {
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({ size: check.bytes(), intact: check.intact(check.bytes()) }))
        })
        return
      }
      if (url.pathname === "/echo" && req.method === "POST") {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => res.end(Buffer.concat(chunks)))
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
    // Longer than a benchmark's idle gaps, so a keep-alive client never races the target's close.
    server.keepAliveTimeout = 60_000
    const wss = new WebSocketServer({ server, perMessageDeflate: false })
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
