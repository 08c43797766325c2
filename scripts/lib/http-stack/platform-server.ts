/**
 * bench:http-stack, stack "platform": the idiomatic @effect/platform server, an `HttpRouter`
 * served by `HttpServer.serve` on `NodeHttpServer.layer`, launched by `NodeRuntime.runMain`.
 * Everything at its defaults (the per-request tracing span included), unless `--tracer off`
 * (`HttpMiddleware.withTracerDisabledWhen(() => true)`), reported as its own stack.
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import * as http from "node:http"
import { answerMemory, ready, small } from "./common.js"

const tracerOff = process.argv.includes("--tracer") && process.argv[process.argv.indexOf("--tracer") + 1] === "off"

const router = HttpRouter.empty.pipe(
  HttpRouter.get("/small", Effect.sync(() => HttpServerResponse.unsafeJson(small))),
  HttpRouter.post(
    "/body",
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const body = yield* request.arrayBuffer
      return HttpServerResponse.unsafeJson({ length: body.byteLength })
    })
  )
)

const Announce = Layer.effectDiscard(Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  answerMemory()
  ready((server.address as HttpServer.TcpAddress).port, tracerOff ? "platform-notrace" : "platform")
}))

const ServerLive = NodeHttpServer.layer(() => {
  const server = http.createServer()
  server.keepAliveTimeout = 75_000
  return server
}, { port: 0, host: "127.0.0.1" })

const Serve = HttpServer.serve(router)

const App = (tracerOff ? HttpMiddleware.withTracerDisabledWhen(Serve, () => true) : Serve).pipe(
  Layer.merge(Announce),
  Layer.provide(ServerLive)
)

NodeRuntime.runMain(Layer.launch(App))
