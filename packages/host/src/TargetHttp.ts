import { BodyLimit, Deadlines, decodeBytes, encodeBytes, type HttpRequest, HttpResponse, KeepAliveRetry } from "@effect-relay/protocol"
import { Context, Effect, Layer } from "effect"
import * as http from "node:http"
import * as https from "node:https"
import {
  InvalidRequest,
  ResponseTooLarge,
  type TargetError,
  targetErrorStatus,
  TargetResponseFailed,
  TargetTimeout,
  TargetUnreachable
} from "./Errors.js"
import { endToEnd, fromRawHeaders } from "./Hop.js"

/** Forwards the relay's `http` messages to the local target service with node:http. */
export class TargetHttp extends Context.Tag("effect-relay/TargetHttp")<TargetHttp, {
  /** Never fails: every problem with the target becomes a 4xx/5xx response. */
  readonly forward: (request: HttpRequest) => Effect.Effect<HttpResponse>
  /**
   * Starts a request to the target on this client's keep-alive agent (version 2 streams its
   * body): `path` under the target's own path, `Host` the target's. Throws what node:http throws
   * for a request it cannot make.
   */
  readonly open: (init: { readonly method: string; readonly path: string; readonly headers: Record<string, string | ReadonlyArray<string>> }) => http.ClientRequest
}>() {}

export interface TargetHttpOptions {
  readonly targetUrl: string
  readonly requestTimeoutMs: number
  readonly maxBodyBytes: number
}

interface TargetAnswer {
  readonly status: number
  readonly rawHeaders: ReadonlyArray<string>
  readonly body: Buffer
}

const describe = (error: unknown): string => error instanceof Error ? error.message : String(error)

/**
 * A target client with its own keep-alive agent; the agent's sockets are
 * destroyed when the Layer is released.
 */
export const layer = (options: TargetHttpOptions): Layer.Layer<TargetHttp> =>
  Layer.scoped(TargetHttp, Effect.gen(function*() {
    const target = new URL(options.targetUrl)
    const secure = target.protocol === "https:"
    const transport = secure ? https : http
    const agent = yield* Effect.acquireRelease(
      Effect.sync(() => secure ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true })),
      (agent) => Effect.sync(() => agent.destroy())
    )
    const prefix = target.pathname.replace(/\/+$/, "")
    const max = options.maxBodyBytes
    // One fiber keeps every request's timeout (instead of a timer race per request).
    const deadlines = yield* Deadlines.make(options.requestTimeoutMs)

    /** One request/response exchange, wrapped once: node:http's callbacks stay in here. */
    const exchange = (request: HttpRequest) =>
      Effect.async<TargetAnswer, TargetError>((resume) => {
        const body = decodeBytes(request.body, request.bodyEncoding)
        const headers: Record<string, string | ReadonlyArray<string>> = { ...endToEnd(request.headers), host: target.host }
        const hadLength = Object.keys(request.headers).some((name) => name.toLowerCase() === "content-length")
        if (body.length > 0 || hadLength) headers["content-length"] = String(body.length)
        const path = request.path.startsWith("/") ? request.path : `/${request.path}`

        let settled = false
        let cancelTimeout = () => {}
        const settle = (result: Effect.Effect<TargetAnswer, TargetError>) => {
          if (settled) return
          settled = true
          cancelTimeout()
          resume(result)
        }

        let outgoing: http.ClientRequest
        try {
          outgoing = transport.request({
            protocol: target.protocol,
            hostname: target.hostname,
            port: target.port,
            method: request.method,
            path: prefix + path,
            headers: headers as http.OutgoingHttpHeaders,
            agent
          })
        } catch (error) {
          settle(Effect.fail(new InvalidRequest({ detail: describe(error) })))
          return
        }

        let responded = false
        outgoing.on("error", (error) => {
          const staleSocket = KeepAliveRetry.isStaleSocket(outgoing, error)
          settle(Effect.fail(
            responded
              ? new TargetResponseFailed({ detail: describe(error) })
              : new TargetUnreachable({ detail: describe(error), ...(staleSocket ? { staleSocket } : {}) })
          ))
        })
        outgoing.on("response", (response) => {
          responded = true
          const status = response.statusCode ?? 0
          BodyLimit.collect(response, max, (result) => {
            switch (result._tag) {
              case "Body":
                return settle(Effect.succeed({ status, rawHeaders: response.rawHeaders, body: result.body }))
              case "TooLarge":
                response.destroy()
                return settle(Effect.fail(new ResponseTooLarge({ maxBodyBytes: max })))
              case "Failed":
                return settle(Effect.fail(new TargetResponseFailed({ detail: result.detail })))
            }
          }, { expectBody: true })
        })
        cancelTimeout = deadlines.add(() => {
          settle(Effect.fail(new TargetTimeout({ timeoutMs: options.requestTimeoutMs })))
          outgoing.destroy()
        })
        outgoing.end(body)
        return Effect.sync(() => {
          settled = true
          cancelTimeout()
          outgoing.destroy()
        })
      })

    const toResponse = (request: HttpRequest, answer: TargetAnswer): Effect.Effect<HttpResponse, TargetResponseFailed> => {
      if (!Number.isInteger(answer.status) || answer.status < 100 || answer.status > 599) {
        return Effect.fail(new TargetResponseFailed({ detail: `status ${answer.status} cannot be forwarded` }))
      }
      const encoded = answer.body.length > 0 ? encodeBytes(answer.body) : {}
      // Every field is known valid here (the status was checked above): no need to validate again.
      return Effect.succeed(
        { _tag: "http:response", id: request.id, status: answer.status, headers: fromRawHeaders(answer.rawHeaders), ...encoded } satisfies HttpResponse
      )
    }

    const forward = (request: HttpRequest): Effect.Effect<HttpResponse> =>
      // A kept-alive socket the target closed as it was reused (its keep-alive timeout, 5 s for
      // Node servers) fails before any answer: sent once more, on a fresh socket.
      KeepAliveRetry.retryOnStaleSocket(exchange(request)).pipe(
        Effect.flatMap((answer) => toResponse(request, answer)),
        Effect.catchAll((error) =>
          Effect.logWarning("http.target_error").pipe(
            Effect.annotateLogs({ error: error._tag, detail: error.message, requestId: request.id, method: request.method }),
            Effect.as(errorResponse(request.id, error))
          )
        )
      )

    const open = (init: { readonly method: string; readonly path: string; readonly headers: Record<string, string | ReadonlyArray<string>> }) =>
      transport.request({
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: init.method,
        path: prefix + (init.path.startsWith("/") ? init.path : `/${init.path}`),
        headers: { ...init.headers, host: target.host } as http.OutgoingHttpHeaders,
        agent
      })

    return { forward, open }
  }))

/** The response the relay gets when the target could not give one: the detail is in `http.target_error`'s log line only. */
export const errorResponse = (id: string, error: TargetError): HttpResponse => {
  const { code, message, status } = targetErrorStatus(error)
  return HttpResponse.make({
    id,
    status,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ error: code, message })
  })
}
