/**
 * The relay's HTTP surface on a node:http server: it listens, sends each request or upgrade to
 * the part that answers it (`Endpoints`, `ClientRequests`, `ClientSockets`, `TunnelUpgrade`,
 * `BrowserLogin`), and stops. node:http is wrapped here; everything behind it is Effect
 * services. Request fibers run in the server's scope: releasing the Layer interrupts them.
 */
import { Cause, Context, Effect, Either, FiberId, FiberSet, Layer, Option } from "effect"
import * as http from "node:http"
import type { Duplex } from "node:stream"
import { RelayAddress } from "../config/RelayAddress.js"
import { internalUrlFor, RelayConfig } from "../config/RelayConfig.js"
import { Draining } from "../tunnel/Draining.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { ClientRequests } from "./ClientRequests.js"
import { ClientSockets } from "./ClientSockets.js"
import { Endpoints } from "./Endpoints.js"
import { type HttpError, httpErrorBody, toHttpError } from "./ErrorResponse.js"
import { RouteNotFound } from "./HttpErrors.js"
import { BrowserLogin, isLogin, logoutPath } from "./BrowserLogin.js"
import { routeOf, type Site } from "./HostRoute.js"
import { RouteAccess } from "./RouteAccess.js"
import { rejectUpgrade, writeError, writeJson, writeRaw } from "./Responses.js"
import { TunnelUpgrade } from "./TunnelUpgrade.js"

export class RelayServer extends Context.Tag("effect-relay/RelayServer")<RelayServer, {
  readonly server: http.Server
  readonly port: number
  /** Closes the listening socket (new connections are refused) and the idle kept-alive connections; the others keep working. */
  readonly stopAccepting: Effect.Effect<void>
  /** Waits until no request is being answered, at most `ms`. */
  readonly awaitRequests: (ms: number) => Effect.Effect<void>
  /** Closes every remaining client connection (after the tunnels are gone). */
  readonly closeConnections: Effect.Effect<void>
}>() {
  static layer = Layer.scoped(
    RelayServer,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const address = yield* RelayAddress
      const draining = yield* Draining
      const route = yield* makeDispatch
      const run = yield* FiberSet.makeRuntime<never>()

      const server = http.createServer({
        maxHeaderSize: config.maxHeaderBytes,
        headersTimeout: config.headersTimeoutMs,
        // Node's whole-request bound (5 min by default) must not be below the headers' one.
        requestTimeout: Math.max(300_000, config.headersTimeoutMs),
        // How often both timeouts are checked (30 s by default): a quarter of the headers' one.
        connectionsCheckingInterval: Math.min(30_000, Math.ceil(config.headersTimeoutMs / 4))
      })
      // Load balancers and peer relays keep connections to the relay open between requests; the
      // relay must not be the side that closes an idle one first (a request sent on it just as
      // it closes fails with a reset). 75 s is above the 60 s idle timeout common to proxies.
      server.keepAliveTimeout = 75_000
      // A client may shut down its sending side once its request is sent (FIN): it still gets the
      // answer. Node's default ends the connection at the FIN and drops the request in flight;
      // this property (no createServer option for it) keeps the answer, then closes.
      ;(server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true

      /** Requests being answered, and who waits for there to be none. */
      let answering = 0
      let whenIdle: Array<() => void> = []

      server.on("request", (req, res) => {
        const started = performance.now()
        // While draining, every answer ends its connection: the client's next request goes to
        // another relay, and nothing is left to cut when the drain ends.
        if (draining.isDraining()) res.setHeader("connection", "close")
        answering++
        const { answer, toHost: counted } = route.request(req, res)
        const fiber = run(answer.pipe(guardRequest(res)))
        res.on("close", () => {
          if (--answering === 0) for (const f of whenIdle.splice(0)) f()
          const finished = res.writableFinished
          if (!finished) fiber.unsafeInterruptAsFork(FiberId.none)
          // 499: the client went away before its answer was written (nginx's convention).
          if (counted) RelayMetrics.recordRequest(finished ? res.statusCode : 499, (performance.now() - started) / 1000)
        })
      })
      server.on("upgrade", (req, socket, head) => {
        // A client that resets TCP during the upgrade must not take the process down.
        socket.on("error", () => {})
        run(route.upgrade(req, socket, head).pipe(guardUpgrade(socket)))
      })
      server.on("clientError", (error: NodeJS.ErrnoException, socket) => run(answerClientError(error, socket, config.maxHeaderBytes)))

      const stopAccepting = Effect.sync(() => {
        if (server.listening) server.close()
        server.closeIdleConnections()
      })
      const awaitRequests = (ms: number) =>
        Effect.async<void>((resume) => {
          if (answering === 0) return resume(Effect.void)
          const done = () => resume(Effect.void)
          whenIdle.push(done)
          return Effect.sync(() => {
            whenIdle = whenIdle.filter((f) => f !== done)
          })
        }).pipe(
          // Run from the drain, a finalizer: uninterruptible unless said so, and the timeout must cut it.
          Effect.interruptible,
          Effect.timeoutTo({ duration: ms, onSuccess: () => undefined, onTimeout: () => undefined })
        )
      const closeConnections = Effect.sync(() => server.closeAllConnections())

      const port = yield* Effect.acquireRelease(listen(server, config.port, config.bindHost), () => Effect.zipRight(stopAccepting, closeConnections))
      yield* address.set({ port, internalUrl: internalUrlFor(config.internalUrl, port) })
      yield* Effect.logInfo("relay.listening").pipe(Effect.annotateLogs({
        port,
        bindHost: config.bindHost,
        ...Option.match(config.publicDomain, { onNone: () => ({}), onSome: (publicDomain) => ({ publicDomain }) })
      }))
      return RelayServer.of({ server, port, stopAccepting, awaitRequests, closeConnections })
    })
  )
}

/**
 * Which part answers a request or an upgrade: by hostname first (`HostRoute`'s site), then by
 * path. On a host's hostname every path and WebSocket is the host's, but for the browser login
 * (a GET with `?token=`) and `/_logout`; a reserved or malformed name under the public domain is
 * answered 400; on the relay's own names (the apex, an address, any other name) the relay's
 * routes and `/hosts/...`. `toHost`: the request is counted as a client request to a host.
 */
const makeDispatch = Effect.gen(function*() {
  const endpoints = yield* Endpoints
  const clientRequests = yield* ClientRequests
  const clientSockets = yield* ClientSockets
  const tunnels = yield* TunnelUpgrade
  const access = yield* RouteAccess
  const browser = yield* BrowserLogin

  const request = (req: http.IncomingMessage, res: http.ServerResponse): { readonly answer: Effect.Effect<void>; readonly toHost: boolean } => {
    const url = req.url ?? "/"
    const site = access.site(req)
    switch (site._tag) {
      case "NotAHost":
        return { answer: writeError(res, site.error), toHost: false }
      case "Host":
        return { answer: onHostname(req, res, url, site), toHost: true }
      case "Relay":
        return { answer: onRelay(req, res, url), toHost: url.startsWith("/hosts/") }
    }
  }

  const onHostname = (req: http.IncomingMessage, res: http.ServerResponse, url: string, site: Site): Effect.Effect<void> => {
    const route = routeOf(site, url)
    if (route === undefined || Either.isLeft(route)) return clientRequests.handle(req, res, url)
    if (route.right.path === logoutPath) return browser.logout(req, res)
    // With a session already, `?token=` is the app's (a login is for a browser without one).
    if (isLogin(req.method, route.right) && !access.hasSession(req, route.right)) return browser.login(req, res, route.right)
    return clientRequests.handle(req, res, url)
  }

  const onRelay = (req: http.IncomingMessage, res: http.ServerResponse, url: string): Effect.Effect<void> => {
    if (url.startsWith("/hosts/")) return clientRequests.handle(req, res, url)
    const q = url.indexOf("?")
    const pathname = q === -1 ? url : url.slice(0, q)
    switch (pathname) {
      case "/health":
        return endpoints.health(res)
      case "/ready":
        return endpoints.ready(res)
      case "/metrics":
        return endpoints.metrics(res)
      case "/tunnel":
        return writeJson(res, 426, { error: "upgrade_required", message: "open /tunnel as a WebSocket" })
      default:
        return writeError(res, new RouteNotFound({ path: pathname }))
    }
  }

  const upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): Effect.Effect<void> => {
    const url = req.url ?? "/"
    const site = access.site(req)
    if (site._tag === "NotAHost") return rejectUpgrade(socket, toHttpError(site.error))
    if (site._tag === "Host") return clientSockets.handle(req, socket, head, url)
    if (url === "/tunnel" || url.startsWith("/tunnel?")) return tunnels.handle(req, socket, head, url)
    if (url.startsWith("/hosts/")) return clientSockets.handle(req, socket, head, url)
    return rejectUpgrade(socket, toHttpError(new RouteNotFound({ path: url.split("?")[0]! })))
  }

  return { request, upgrade }
})

/** Anything unexpected (a defect) still answers the client, and is logged. */
const guardRequest = (res: http.ServerResponse) =>
  Effect.catchAllCause((cause: Cause.Cause<never>) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.void
      : Effect.logError("request.defect", cause).pipe(Effect.zipRight(writeJson(res, 500, { error: "internal", message: "internal error" })))
  )

const guardUpgrade = (socket: Duplex) =>
  Effect.catchAllCause((cause: Cause.Cause<never>) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.void
      : Effect.logError("upgrade.defect", cause).pipe(Effect.zipRight(Effect.sync(() => socket.destroy())))
  )

/**
 * A request node:http could not read (node's `clientError`): the status node would pick, with the
 * relay's JSON body, then the connection closes. Nothing is written into a response already
 * under way, nor to a client that reset.
 */
const answerClientError = (error: NodeJS.ErrnoException, socket: Duplex, maxHeaderBytes: number): Effect.Effect<void> => {
  const answer = clientErrorAnswer(error.code, maxHeaderBytes)
  const inResponse = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true
  return Effect.logDebug("request.client_error").pipe(
    Effect.annotateLogs({ code: error.code ?? "unknown", status: answer?.status ?? 0 }),
    Effect.zipRight(
      answer === undefined || inResponse || !socket.writable
        ? Effect.sync(() => socket.destroy())
        : writeRaw(socket, answer.status, { "content-type": "application/json" }, httpErrorBody(answer))
    )
  )
}

export const clientErrorAnswer = (code: string | undefined, maxHeaderBytes: number): HttpError | undefined => {
  switch (code) {
    case "ECONNRESET":
      return undefined
    case "HPE_HEADER_OVERFLOW":
      return { status: 431, error: "headers_too_large", message: `the request line and headers exceed ${maxHeaderBytes} bytes` }
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return { status: 413, error: "payload_too_large", message: "the request's chunk extensions are too large" }
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, error: "client_timeout", message: "the request was not received in time" }
    default:
      return { status: 400, error: "bad_request", message: "malformed HTTP request" }
  }
}

/**
 * Listens on the port. A deploy sends a relay every host of the one draining at once: a deep
 * accept queue (Node's default is 511; the kernel caps it at net.core.somaxconn) keeps that burst
 * from overflowing it, which clients see as refused or reset connections.
 */
const listen = (server: http.Server, port: number, host: string) =>
  Effect.async<number, Error>((resume) => {
    const onError = (error: Error) => resume(Effect.fail(error))
    server.once("error", onError)
    server.listen({ port, host, backlog: 4096 }, () => {
      server.off("error", onError)
      resume(Effect.succeed((server.address() as { port: number }).port))
    })
  }).pipe(Effect.orDie)
