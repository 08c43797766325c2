/**
 * The target every system in bench:forward forwards to, in a process of its
 * own (so an in-process load generator does not share its event loop): any
 * GET answers "ok", a POST echoes its body, and a WebSocket echoes each
 * message. Prints `{"port":N}` on stdout once it listens on 127.0.0.1.
 */
import * as http from "node:http"
import { WebSocketServer } from "ws"

const server = http.createServer((req, res) => {
  if (req.method === "POST") {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => res.end(Buffer.concat(chunks)))
    return
  }
  req.resume()
  res.end("ok")
})
const wss = new WebSocketServer({ server, perMessageDeflate: false })
wss.on("connection", (ws) => ws.on("message", (data, binary) => ws.send(data, { binary })))
server.keepAliveTimeout = 60_000
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: (server.address() as { port: number }).port }))
})
