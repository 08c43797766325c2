/**
 * bench:http-stack, WebSocket stack "platform-socket": the idiomatic @effect/platform way. An
 * HttpRouter route on NodeHttpServer calls `HttpServerRequest.upgrade` for a `Socket`, takes its
 * `writer`, and echoes with `socket.runRaw((data) => write(data))` (the handler's Effect is run
 * by runRaw, one fiber per message); the route's fiber lives as long as the socket.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import * as http from "node:http"
import { answerMemory, ready } from "./common.js"

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/ws",
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const socket = yield* request.upgrade
      const write = yield* socket.writer
      yield* socket.runRaw((data) => write(data))
      return HttpServerResponse.empty()
    }).pipe(Effect.scoped, Effect.catchAll(() => Effect.succeed(HttpServerResponse.empty())))
  )
)

const Announce = Layer.effectDiscard(Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  answerMemory()
  ready((server.address as HttpServer.TcpAddress).port, "platform-socket")
}))

const ServerLive = NodeHttpServer.layer(() => http.createServer(), { port: 0, host: "127.0.0.1", backlog: 4096 })

NodeRuntime.runMain(Layer.launch(HttpServer.serve(router).pipe(Layer.merge(Announce), Layer.provide(ServerLive))))
