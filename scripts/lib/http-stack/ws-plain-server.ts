/**
 * bench:http-stack, WebSocket reference stack "ws-plain": a node:http server and a `ws`
 * WebSocketServer echoing from its message callback, no Effect at all. Shows what `ws` and Node
 * cost by themselves, under the two stacks compared.
 */
import * as http from "node:http"
import { WebSocketServer } from "ws"
import { answerMemory, ready } from "./common.js"

const server = http.createServer((req, res) => {
  req.resume()
  res.writeHead(404).end()
})
const wss = new WebSocketServer({ noServer: true, clientTracking: false, perMessageDeflate: false, maxPayload: 1024 * 1024 })
server.on("upgrade", (req, socket, head) => {
  socket.on("error", () => {})
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on("error", () => {})
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
})
answerMemory()
server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () => ready((server.address() as { port: number }).port, "ws-plain"))
