import { Effect } from "effect"
import * as http from "node:http"
import { WebSocketServer } from "ws"
import { closeServer } from "./CloseServer.js"

/** A local service for a host to forward to, listening on 127.0.0.1 with a free port. */
export interface Target {
  readonly port: number
  readonly url: string
  /** Every request the target has seen, in order. */
  readonly seen: Array<{ readonly method: string; readonly url: string; readonly headers: http.IncomingHttpHeaders }>
}

/**
 * Routes:
 * - `/echo...` answers 200 with JSON `{method, url, headers, bodyBase64}`; `POST /echo-bytes` answers the raw body back.
 * - `/status/:code` answers that status.
 * - `/cookies` sets two cookies.
 * - `/slow/:ms` answers after a delay.
 * - `/headers` echoes `x-echo-*` request headers as response headers.
 * - WebSocket on any path: echoes each frame (text as text, binary as binary); a `close:CODE` text frame closes with CODE.
 *   On `/greet...` its first frame is `{url, headers}` of the upgrade request.
 */
export const startTarget = Effect.acquireRelease(
  Effect.async<{ server: http.Server; wss: WebSocketServer; target: Target }>((resume) => {
    const seen: Array<Target["seen"][number]> = []
    const server = http.createServer((req, res) => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers })
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const body = Buffer.concat(chunks)
        const url = req.url ?? "/"
        if (url.startsWith("/echo-bytes")) {
          res.writeHead(200, { "content-type": "application/octet-stream" })
          return res.end(body)
        }
        if (url.startsWith("/status/")) {
          const code = Number(url.slice("/status/".length).split(/[/?]/)[0])
          res.writeHead(code, { "content-type": "text/plain" })
          return res.end(`status ${code}`)
        }
        if (url.startsWith("/cookies")) {
          res.setHeader("set-cookie", ["a=1; Path=/", "b=2; Path=/"])
          return res.end("cookies")
        }
        if (url.startsWith("/slow/")) {
          const ms = Number(url.slice("/slow/".length).split(/[/?]/)[0])
          setTimeout(() => res.end("slow"), ms)
          return
        }
        if (url.startsWith("/headers")) {
          for (const [k, v] of Object.entries(req.headers)) if (k.startsWith("x-echo-") && v !== undefined) res.setHeader(k, v)
          return res.end("headers")
        }
        const json = JSON.stringify({ method: req.method, url, headers: req.headers, bodyBase64: body.toString("base64") })
        res.writeHead(200, { "content-type": "application/json" })
        res.end(json)
      })
    })
    const wss = new WebSocketServer({ server })
    wss.on("connection", (ws, req) => {
      ws.on("error", () => {})
      if (req.url?.startsWith("/greet")) ws.send(JSON.stringify({ url: req.url, headers: req.headers }))
      ws.on("message", (data, isBinary) => {
        if (!isBinary && data.toString().startsWith("close:")) {
          return ws.close(Number(data.toString().slice("close:".length)), "target closed")
        }
        ws.send(data, { binary: isBinary })
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port
      resume(Effect.succeed({ server, wss, target: { port, url: `http://127.0.0.1:${port}`, seen } }))
    })
  }),
  ({ server, wss }) => closeServer(server, wss)
).pipe(Effect.map(({ target }) => target))
