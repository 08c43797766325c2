import { Effect, type Scope } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { WebSocketServer } from "ws"

/** A node:http server on 127.0.0.1, port 0, closed (with its connections) when the scope closes. */
export const httpServer = (
  handler: http.RequestListener
): Effect.Effect<{ readonly server: http.Server; readonly url: string; readonly port: number }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<http.Server>((resume) => {
      const server = http.createServer(handler)
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((server) => {
    const port = (server.address() as AddressInfo).port
    return { server, port, url: `http://127.0.0.1:${port}` }
  }))

/** A port nothing listens on (it was free a moment ago). */
export const closedPort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = http.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** A `ws` WebSocketServer on an http server; both closed with the scope. */
export const wsServer = (
  options: ConstructorParameters<typeof WebSocketServer>[0] = {}
): Effect.Effect<{ readonly wss: WebSocketServer; readonly url: string; readonly port: number }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { port, server, url } = yield* httpServer((_req, res) => {
      res.statusCode = 426
      res.end()
    })
    const wss = yield* Effect.acquireRelease(
      Effect.sync(() => new WebSocketServer({ ...options, server })),
      (wss) =>
        Effect.async<void>((resume) => {
          for (const client of wss.clients) client.terminate()
          wss.close(() => resume(Effect.void))
        })
    )
    return { wss, url, port }
  })
