/**
 * bench:http-stack, WebSocket stack "ws-transport": how the relay serves WebSockets. A node:http
 * server whose `upgrade` event runs a fiber through a FiberSet runtime (RelayServer.ts); the
 * fiber completes the handshake with a `ws` WebSocketServer in noServer mode (WsUpgrade.ts),
 * wraps the socket with the protocol package's `Transport.fromWebSocket`, echoes each frame from
 * the socket's own callback (`onMessage` / `unsafeSend`, the relay's hot path for tunnels and
 * client channels) and waits for `closed`.
 */
import { Effect, FiberSet } from "effect"
import * as http from "node:http"
import type { Duplex } from "node:stream"
import { WebSocketServer, type WebSocket } from "ws"
import * as Transport from "../../../packages/protocol/src/Transport.js"
import { answerMemory, ready } from "./common.js"

const wss = new WebSocketServer({
  noServer: true,
  clientTracking: false,
  perMessageDeflate: false,
  maxPayload: 1024 * 1024,
  handleProtocols: (protocols) => protocols.values().next().value ?? false
})

const upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
  Effect.async<WebSocket>((resume) => {
    const onClose = () => resume(Effect.interrupt)
    socket.once("close", onClose)
    if (socket.destroyed) return resume(Effect.interrupt)
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.off("close", onClose)
      resume(Effect.succeed(ws))
    })
    return Effect.sync(() => socket.off("close", onClose))
  }).pipe(Effect.flatMap(Transport.fromWebSocket))

const echo = (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
  Effect.gen(function*() {
    const transport = yield* upgrade(req, socket, head)
    transport.onMessage((frame) => void transport.unsafeSend(frame))
    yield* transport.closed
  })

const program = Effect.gen(function*() {
  const run = yield* FiberSet.makeRuntime<never>()
  const server = http.createServer((req, res) => {
    req.resume()
    res.writeHead(404).end()
  })
  server.on("upgrade", (req, socket, head) => {
    socket.on("error", () => {})
    run(echo(req, socket, head).pipe(Effect.catchAllCause(() => Effect.sync(() => socket.destroy()))))
  })
  answerMemory()
  yield* Effect.async<void>((resume) => {
    server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () => resume(Effect.void))
  })
  ready((server.address() as { port: number }).port, "ws-transport")
  return yield* Effect.never
})

Effect.runFork(Effect.scoped(program))
