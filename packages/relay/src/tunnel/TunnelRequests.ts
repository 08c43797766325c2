/**
 * A tunnel's HTTP requests in flight: each goes out as an `http` frame and waits, with no fiber of
 * its own, for the `http:response` frame with its id, the request timeout (one `Deadlines` fiber
 * for the whole tunnel), or the tunnel closing. A host that announced `cancel` is told when the
 * relay stops waiting for one.
 */
import {
  Deadlines,
  decodeBytes,
  encodeBytes,
  type Headers,
  type HostId,
  type HttpRequest,
  type HttpResponse,
  RelayToHostCodec,
  type Transport
} from "@effect-relay/protocol"
import { Effect, type Scope } from "effect"
import * as http from "node:http"
import type { RelaySettings } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { BadResponseFromHost, RequestTimeout, TooManyPendingRequests, TunnelClosed } from "./TunnelErrors.js"

/** A client's HTTP request as it goes into a tunnel. */
export interface ForwardRequest {
  readonly method: string
  /** Path and query as the host's local service should see them. */
  readonly path: string
  readonly headers: Headers
  readonly body: Uint8Array
}

/** The host's answer. */
export interface ForwardResponse {
  readonly status: number
  readonly headers: Headers
  readonly body: Buffer
}

export type RequestError = TunnelClosed | RequestTimeout | BadResponseFromHost

export interface TunnelRequests {
  readonly request: (req: ForwardRequest) => Effect.Effect<ForwardResponse, RequestError | TooManyPendingRequests>
  /** A response frame from the host: handed to its request (a late one is dropped). */
  readonly onResponse: (message: HttpResponse) => Effect.Effect<void>
  /** A response frame for `id` that did not decode: its request fails at once (502). */
  readonly onBadResponse: (id: string, reason: string) => void
  /** Fails every request still waiting (the tunnel is closing). */
  readonly failAll: () => void
  /** Called each time a request ends, while set (a draining tunnel waits for the last). */
  onSettled: (() => void) | undefined
  readonly size: () => number
}

export interface RequestsContext {
  readonly config: RelaySettings
  readonly hostId: HostId
  readonly conn: Transport.Transport
  /** Whether the host stops a request the relay gave up on (`http:cancel`). */
  readonly cancels: boolean
  /** Whether new requests are refused (the tunnel is closing). */
  readonly isClosing: () => boolean
}

interface Waiting {
  readonly resume: (result: Effect.Effect<ForwardResponse, RequestError>) => void
  cancelTimeout: () => void
}

/**
 * What is wrong with a response's head, if anything: over `maxBytes` as it would be written, or a
 * header name or value node:http refuses to write (a control character, a line break: a client's
 * connection must never get a head the relay did not mean).
 */
export const headProblem = (headers: Headers, maxBytes: number): string | undefined => {
  let n = 0
  try {
    for (const name in headers) {
      http.validateHeaderName(name)
      const value = headers[name]!
      for (const v of typeof value === "string" ? [value] : value) {
        http.validateHeaderValue(name, v)
        n += name.length + v.length + 4
      }
    }
  } catch {
    return "a header node:http cannot write"
  }
  return n > maxBytes ? `head over ${maxBytes} bytes` : undefined
}

export const make = (ctx: RequestsContext): Effect.Effect<TunnelRequests, never, Scope.Scope> =>
  Effect.map(Deadlines.make(ctx.config.requestTimeoutMs), (deadlines) => {
    const { config, conn, hostId } = ctx
    /** Requests waiting for their response: how to resume each, and how to cancel its timeout. */
    const pending = new Map<string, Waiting>()
    let seq = 0

    /** Ends one waiting request (response, timeout, or the tunnel closing); at most once. */
    const settle = (id: string, waiting: Waiting, result: Effect.Effect<ForwardResponse, RequestError>) => {
      if (pending.get(id) !== waiting) return
      pending.delete(id)
      waiting.cancelTimeout()
      waiting.resume(result)
      self.onSettled?.()
    }

    /** Tells a host that announced it that request `id` is not waited for anymore. */
    const cancel = (id: string) => {
      if (ctx.cancels) conn.unsafeSend(RelayToHostCodec.encode({ _tag: "http:cancel", id }))
    }

    const onResponse = (message: HttpResponse): Effect.Effect<void> => {
      const waiting = pending.get(message.id)
      if (waiting === undefined) {
        // The client went away or the request timed out before the host answered.
        return Effect.logDebug("tunnel.late_response").pipe(Effect.annotateLogs({ requestId: message.id }))
      }
      const problem = headProblem(message.headers, config.maxResponseHeaderBytes)
      if (problem !== undefined) {
        RelayMetrics.limitHit("response_head")
        settle(message.id, waiting, Effect.fail(new BadResponseFromHost({ hostId, reason: problem })))
        return Effect.void
      }
      settle(message.id, waiting, Effect.succeed({ status: message.status, headers: message.headers, body: decodeBytes(message.body, message.bodyEncoding) }))
      return Effect.void
    }

    const onBadResponse = (id: string, reason: string) => {
      const waiting = pending.get(id)
      if (waiting !== undefined) settle(id, waiting, Effect.fail(new BadResponseFromHost({ hostId, reason })))
    }

    // One async step per request: the frame goes out, and the response frame (or the timeout,
    // or the tunnel closing) resumes it. No fiber, Deferred or timer race of its own.
    const request = (req: ForwardRequest) =>
      Effect.async<ForwardResponse, RequestError | TooManyPendingRequests>((resume) => {
        if (ctx.isClosing()) return resume(Effect.fail(new TunnelClosed({ hostId })))
        if (pending.size >= config.maxPendingPerTunnel) {
          return resume(Effect.fail(new TooManyPendingRequests({ hostId, limit: config.maxPendingPerTunnel })))
        }
        const id = String(++seq)
        const frame = RelayToHostCodec.encode(
          { _tag: "http", id, method: req.method, path: req.path, headers: req.headers, ...(req.body.length > 0 ? encodeBytes(req.body) : {}) } satisfies HttpRequest
        )
        if (!conn.unsafeSend(frame)) return resume(Effect.fail(new TunnelClosed({ hostId })))
        const waiting: Waiting = { resume, cancelTimeout: () => {} }
        pending.set(id, waiting)
        waiting.cancelTimeout = deadlines.add(() => {
          settle(id, waiting, Effect.fail(new RequestTimeout({ hostId, ms: config.requestTimeoutMs })))
          cancel(id)
        })
        // The client went away: forget the request (its response, if one comes, is dropped).
        return Effect.sync(() => {
          if (pending.get(id) !== waiting) return
          pending.delete(id)
          waiting.cancelTimeout()
          cancel(id)
          self.onSettled?.()
        })
      })

    const self: TunnelRequests = {
      request,
      onResponse,
      onBadResponse,
      failAll: () => {
        for (const [id, waiting] of pending) settle(id, waiting, Effect.fail(new TunnelClosed({ hostId })))
      },
      onSettled: undefined,
      size: () => pending.size
    }
    return self
  })
