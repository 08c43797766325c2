/**
 * bench:http-stack, stack "node-fiber": node:http with each request run as an Effect fiber through
 * a FiberSet runtime, as packages/relay/src/http/RelayServer.ts does (`FiberSet.makeRuntime`,
 * interrupt when the response closes unfinished, defects answered 500), the body read in an
 * `Effect.async` as the relay's ReadBody does (without its budgets and timeouts).
 */
import { Cause, Effect, FiberId, FiberSet } from "effect"
import * as http from "node:http"
import { answerMemory, ready, small } from "./common.js"

const writeJson = (res: http.ServerResponse, status: number, body: unknown) =>
  Effect.sync(() => {
    if (res.headersSent) return void res.destroy()
    const text = JSON.stringify(body)
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
    res.end(text)
  })

const readBody = (req: http.IncomingMessage) =>
  Effect.async<Buffer, Error>((resume) => {
    const chunks: Array<Buffer> = []
    const onData = (chunk: Buffer) => chunks.push(chunk)
    const onEnd = () => resume(Effect.succeed(Buffer.concat(chunks)))
    const onError = (e: Error) => resume(Effect.fail(e))
    req.on("data", onData)
    req.once("end", onEnd)
    req.once("error", onError)
    return Effect.sync(() => {
      req.off("data", onData)
      req.off("end", onEnd)
      req.off("error", onError)
    })
  })

const route = (req: http.IncomingMessage, res: http.ServerResponse): Effect.Effect<void> => {
  if (req.method === "GET" && req.url === "/small") return writeJson(res, 200, small)
  if (req.method === "POST" && req.url === "/body") {
    return readBody(req).pipe(
      Effect.flatMap((body) => writeJson(res, 200, { length: body.length })),
      Effect.catchAll(() => writeJson(res, 400, { error: "bad_request" }))
    )
  }
  return Effect.sync(() => {
    req.resume()
    res.writeHead(404).end()
  })
}

const guardRequest = (res: http.ServerResponse) =>
  Effect.catchAllCause((cause: Cause.Cause<never>) =>
    Cause.isInterruptedOnly(cause) ? Effect.void : writeJson(res, 500, { error: "internal" })
  )

const program = Effect.gen(function*() {
  const run = yield* FiberSet.makeRuntime<never>()
  const server = http.createServer()
  server.keepAliveTimeout = 75_000
  server.on("request", (req, res) => {
    const fiber = run(route(req, res).pipe(guardRequest(res)))
    res.on("close", () => {
      if (!res.writableFinished) fiber.unsafeInterruptAsFork(FiberId.none)
    })
  })
  answerMemory()
  yield* Effect.async<void>((resume) => {
    server.listen(0, "127.0.0.1", () => resume(Effect.void))
  })
  ready((server.address() as { port: number }).port, "node-fiber")
  return yield* Effect.never
})

Effect.runFork(Effect.scoped(program))
