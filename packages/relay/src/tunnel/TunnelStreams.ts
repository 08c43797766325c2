/**
 * A version 2 tunnel's streams, relay side: HTTP exchanges whose bodies flow as they come, and
 * client WebSockets, each a stream of the tunnel's `StreamMux` with its own credit.
 *
 * An HTTP exchange: the request head goes out at once; the client's body follows as it arrives
 * (the client is not read while the stream has no credit: TCP backpressure reaches it); the host's
 * response head is written to the client as soon as it comes, and each body chunk as it comes,
 * credit going back to the host only once the client's socket took the bytes. A client that goes
 * away resets the stream (the host stops the target's request); a host that resets it mid-body
 * (its target failed) cuts the client's connection: never a short body passed off as complete.
 *
 * Until its response head arrives, an exchange is a waiting request like version 1's (the request
 * timeout, 502 when the tunnel closes); after it, the client's response is being written and a
 * failure can only cut the connection.
 */
import {
  BodyLimit,
  CloseCodes,
  Deadlines,
  type Headers,
  type HostId,
  type HostToRelayV2,
  LogLimits,
  RelayToHostV2Codec,
  type StreamMux as Mux,
  StreamMux,
  type StreamResponse,
  type StreamWsClose,
  type Transport,
  type Windows
} from "@effect-relay/protocol"
import { Effect, type Fiber, FiberId, type Scope } from "effect"
import type * as http from "node:http"
import type { RelaySettings } from "../config/RelayConfig.js"
import { BodyReadTimeout, PayloadTooLarge } from "../http/HttpErrors.js"
import { responseHeadersForClient } from "../http/ForwardHeaders.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import type { ChannelOpen } from "./TunnelChannels.js"
import { BadResponseFromHost, RequestTimeout, TooManyChannels, TooManyPendingRequests, TunnelClosed } from "./TunnelErrors.js"
import { headProblem } from "./TunnelRequests.js"

type Conn = Transport.Transport

/** A client's request as it goes into a version 2 tunnel: its body is read from `req` as it arrives. */
export interface StreamedRequest {
  readonly method: string
  /** Path and query as the host's local service should see them. */
  readonly path: string
  readonly headers: Headers
  readonly req: http.IncomingMessage
  readonly res: http.ServerResponse
  /** The body, when an earlier route already read it (the client's stream is then spent). */
  readonly body?: Buffer
}

export type StreamError = TunnelClosed | RequestTimeout | BadResponseFromHost | TooManyPendingRequests | PayloadTooLarge | BodyReadTimeout

export interface TunnelStreams {
  /**
   * Sends the request and writes the host's response to `res` as it comes. Completes once the
   * response head is written (the body goes on without a fiber); fails, before that, with why.
   */
  readonly http: (request: StreamedRequest) => Effect.Effect<void, StreamError>
  readonly hasRoomForChannel: () => Effect.Effect<void, TooManyChannels>
  /** Carries a client WebSocket to the host's local WebSocket endpoint until either side closes. */
  readonly openChannel: (client: Conn, open: ChannelOpen) => Effect.Effect<void>
  /** A control message from the host other than pong and drain. */
  readonly onMessage: (message: Exclude<HostToRelayV2, { readonly _tag: "pong" | "drain" }>) => Effect.Effect<void>
  /** A binary frame from the host. */
  readonly onFrame: (frame: Uint8Array) => void
  /** A `http:response` that did not decode, for stream `id`: that exchange fails at once. */
  readonly onBadResponse: (id: number, reason: string) => void
  /** Fails every exchange (waiting ones 502, streaming ones cut) and forgets every stream: the tunnel is closing. */
  readonly failAll: () => void
  /** Closes every client WebSocket with this code. */
  readonly closeChannels: (code: number, reason: string) => Effect.Effect<void>
  /** Called each time an exchange ends, while set (a draining tunnel waits for the last). */
  onSettled: (() => void) | undefined
  /** HTTP exchanges in flight: waiting for their head, or with a body still flowing either way. */
  readonly size: () => number
  readonly channelCount: () => number
  /** Bytes received from the host and not yet taken by clients. */
  readonly buffered: () => number
}

export interface StreamsContext {
  readonly config: RelaySettings
  readonly hostId: HostId
  readonly conn: Conn
  /** The host's receive windows (its upgrade header). */
  readonly peerWindows: Windows
  readonly isClosing: () => boolean
  /** A warning the host or a client can repeat at will: rate-limited per tunnel. */
  readonly logLimited: (event: string, fields: Record<string, unknown>) => Effect.Effect<void>
  /** Runs an effect from a socket callback. */
  readonly run: (effect: Effect.Effect<void>) => unknown
  /**
   * The relay sent the host something it may answer with `frames` frames (the tunnel's frame
   * budget gives them back): 1 per Data, Window or message frame, 3 per request head (head, body, end).
   */
  readonly earn: (frames: number) => void
}

/** Frames a host may answer a request head with, on top of its frame rate: its head, a body frame, an End. */
const framesPerAnswer = 3

/** One HTTP exchange. */
interface Exchange {
  readonly port: Mux.StreamPort
  readonly res: http.ServerResponse
  /** While waiting for the head: how the caller is resumed. */
  resume: ((result: Effect.Effect<void, StreamError>) => void) | undefined
  cancelTimeout: () => void
  /** The response's declared length, and the body bytes written so far. */
  length: number | undefined
  written: number
  /** The client's body is all sent (End), or there was none. */
  requestDone: boolean
  /** The response is complete or cut. */
  responseDone: boolean
  /** Stops reading the client's body. */
  stopBody: () => void
  /** Credit waiting for the client's socket to drain. */
  pendingDone: Array<() => void>
  sendTimer: ReturnType<typeof setTimeout> | undefined
}

export const make = (ctx: StreamsContext): Effect.Effect<TunnelStreams, never, Scope.Scope> =>
  Effect.map(Deadlines.make(ctx.config.requestTimeoutMs), (deadlines) => {
    const { config, conn, hostId } = ctx
    const exchanges = new Map<number, Exchange>()
    const channels = new Map<number, { readonly client: Conn; readonly port: Mux.StreamPort }>()
    /** The fibers carrying client WebSockets (the callers of `openChannel`): interrupted at the end. */
    const fibers = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
    const maxStreamed = config.maxStreamedBodyBytes._tag === "Some" ? config.maxStreamedBodyBytes.value : Infinity

    const mux = StreamMux.make({
      // Every binary frame the mux sends (Data, Window, a message, an End) may be answered by one.
      conn: { ...conn, unsafeSend: (data) => conn.unsafeSend(data) && (ctx.earn(1), true) },
      windows: { stream: config.streamWindowBytes, tunnel: config.tunnelWindowBytes },
      peerWindows: ctx.peerWindows,
      sendBufferBytes: config.tunnelBufferBytes,
      encodeReset: (stream, reason) => RelayToHostV2Codec.encode({ _tag: "reset", stream, reason }),
      onProblem: (problem, stream) => {
        RelayMetrics.limitHit("bad_frame")
        ctx.run(ctx.logLimited("tunnel.stream_problem", { problem, stream: stream ?? null }))
      }
    })

    // ---- HTTP ------------------------------------------------------------------------------------

    /** The exchange is over (both ways, or cut): it leaves the table. */
    const settle = (id: number, x: Exchange) => {
      if (exchanges.get(id) !== x) return
      exchanges.delete(id)
      x.cancelTimeout()
      if (x.sendTimer !== undefined) clearTimeout(x.sendTimer)
      x.stopBody()
      self.onSettled?.()
    }

    /** Fails an exchange still waiting for its head (the caller answers the client). */
    const failWaiting = (id: number, x: Exchange, error: StreamError, reset?: string) => {
      const resume = x.resume
      x.resume = undefined
      if (reset !== undefined) x.port.reset(reset)
      else x.port.close()
      settle(id, x)
      resume?.(Effect.fail(error))
    }

    /** Cuts a response whose head was written: the client sees its connection end, never a short body as complete. */
    const cut = (id: number, x: Exchange, reset?: string) => {
      x.responseDone = true
      if (reset !== undefined) x.port.reset(reset)
      else x.port.close()
      x.res.destroy()
      settle(id, x)
    }

    /** The response is complete: the exchange ends once the client's body is sent too (or is told to stop). */
    const finishResponse = (id: number, x: Exchange) => {
      x.responseDone = true
      if (x.requestDone) x.port.close()
      // Answered before the whole body was sent (a target that refused it early): the rest is not wanted.
      else x.port.reset("answered")
      settle(id, x)
    }

    const onHead = (message: StreamResponse) => {
      const x = exchanges.get(message.stream)
      if (x === undefined) return
      if (x.resume === undefined) {
        ctx.run(ctx.logLimited("tunnel.stream_problem", { problem: "second response head", stream: message.stream }))
        return cut(message.stream, x, "second head")
      }
      const problem = headProblem(message.headers, config.maxResponseHeaderBytes)
        ?? (message.status < 200 ? `status ${message.status} is not an answer` : undefined)
        ?? (message.length !== undefined && message.length > maxStreamed ? `body over ${maxStreamed} bytes` : undefined)
      if (problem !== undefined) {
        RelayMetrics.limitHit(problem.startsWith("head") ? "response_head" : problem.startsWith("body") ? "body_too_large" : "bad_frame")
        return failWaiting(message.stream, x, new BadResponseFromHost({ hostId, reason: problem }), "bad response")
      }
      const resume = x.resume
      x.resume = undefined
      x.cancelTimeout()
      x.length = message.length
      const bodiless = x.res.req.method === "HEAD" || message.status === 204 || message.status === 304
      try {
        x.res.writeHead(message.status, {
          ...responseHeadersForClient(message.headers),
          ...(message.length !== undefined && !bodiless ? { "content-length": message.length } : {})
        })
        // The head goes now, not with the first chunk: a client waiting on a stream sees it at once.
        if (!message.end) x.res.flushHeaders()
      } catch (cause) {
        // Checked above, so not expected: a half-written head cannot become a 502; the connection goes.
        ctx.run(ctx.logLimited("request.bad_response_from_host", { cause: LogLimits.clip(String(cause)) }))
        cut(message.stream, x, "bad response")
        return resume(Effect.void)
      }
      if (message.end) {
        x.res.end()
        finishResponse(message.stream, x)
      }
      resume(Effect.void)
    }

    /** Credit for what the client's socket took; a client that takes nothing for the send timeout is cut. */
    const writeToClient = (id: number, x: Exchange, chunk: Buffer, done: () => void) => {
      x.written += chunk.length
      if (x.written > (x.length ?? maxStreamed)) {
        RelayMetrics.limitHit(x.length === undefined ? "body_too_large" : "bad_frame")
        ctx.run(ctx.logLimited("tunnel.stream_problem", { problem: x.length === undefined ? "response body over the limit" : "more bytes than the declared length", stream: id }))
        return cut(id, x, "too long")
      }
      let ok: boolean
      try {
        ok = x.res.write(chunk)
      } catch {
        return cut(id, x, "client gone")
      }
      if (ok) return done()
      x.pendingDone.push(done)
      if (x.sendTimer === undefined) {
        x.sendTimer = setTimeout(() => {
          RelayMetrics.limitHit("send_timeout")
          cut(id, x, "client too slow")
        }, config.sendTimeoutMs)
      }
    }

    const sinkOf = (id: number, x: () => Exchange): Mux.StreamSink => ({
      onData: (chunk, done) => {
        const ex = x()
        if (exchanges.get(id) !== ex) return done()
        if (ex.resume !== undefined) {
          ctx.run(ctx.logLimited("tunnel.stream_problem", { problem: "body before head", stream: id }))
          return failWaiting(id, ex, new BadResponseFromHost({ hostId, reason: "body before head" }), "body before head")
        }
        writeToClient(id, ex, chunk, done)
      },
      onEnd: () => {
        const ex = x()
        if (exchanges.get(id) !== ex || ex.responseDone) return
        if (ex.resume !== undefined) return failWaiting(id, ex, new BadResponseFromHost({ hostId, reason: "end before head" }), "end before head")
        if (ex.length !== undefined && ex.written < ex.length) return cut(id, ex, "short body")
        ex.res.end()
        finishResponse(id, ex)
      },
      onReset: (reason) => {
        const ex = x()
        if (exchanges.get(id) !== ex) return
        if (ex.resume !== undefined) return failWaiting(id, ex, new BadResponseFromHost({ hostId, reason: `the host gave up: ${LogLimits.clip(reason, 100)}` }))
        cut(id, ex)
      }
    })

    /**
     * Sends the client's body as it arrives, within the stream's credit: the client is not read
     * while the stream has no room. A body that stops arriving for the read timeout, or grows over
     * the streamed limit, ends the exchange.
     */
    const sendBody = (id: number, x: Exchange, request: StreamedRequest) => {
      if (request.body !== undefined) {
        x.port.write(request.body)
        x.port.end()
        x.requestDone = true
        return
      }
      const { req } = request
      let bytes = 0
      let timer: ReturnType<typeof setTimeout> | undefined
      const armTimer = () => {
        if (timer !== undefined) clearTimeout(timer)
        timer = setTimeout(onTimeout, config.bodyReadTimeoutMs)
      }
      const stop = () => {
        if (timer !== undefined) clearTimeout(timer)
        timer = undefined
        req.off("data", onData)
        req.off("end", onEnd)
      }
      const onTimeout = () => {
        RelayMetrics.limitHit("body_read_timeout")
        const error = new BodyReadTimeout({ ms: config.bodyReadTimeoutMs })
        if (x.resume !== undefined) failWaiting(id, x, error, "client too slow")
        else cut(id, x, "client too slow")
        req.socket?.destroy()
      }
      const onData = (chunk: Buffer) => {
        bytes += chunk.length
        if (bytes > maxStreamed) {
          RelayMetrics.limitHit("body_too_large")
          stop()
          if (x.resume !== undefined) failWaiting(id, x, new PayloadTooLarge({ limit: maxStreamed }), "request too large")
          else cut(id, x, "request too large")
          return
        }
        armTimer()
        if (!x.port.write(chunk)) {
          // No room toward the host: the client waits in its own socket (and the read timeout with it).
          req.pause()
          if (timer !== undefined) clearTimeout(timer)
          timer = undefined
          x.port.onDrain(() => {
            if (exchanges.get(id) !== x) return
            armTimer()
            req.resume()
          })
        }
      }
      const onEnd = () => {
        stop()
        x.requestDone = true
        x.port.end()
        if (x.responseDone) x.port.close()
      }
      x.stopBody = stop
      req.on("data", onData)
      req.on("end", onEnd)
      armTimer()
    }

    const http = (request: StreamedRequest) =>
      Effect.async<void, StreamError>((resume) => {
        if (ctx.isClosing()) return resume(Effect.fail(new TunnelClosed({ hostId })))
        if (exchanges.size >= config.maxPendingPerTunnel) {
          return resume(Effect.fail(new TooManyPendingRequests({ hostId, limit: config.maxPendingPerTunnel })))
        }
        const length = request.body !== undefined ? request.body.length : BodyLimit.declaredLength(request.req)
        if (length !== undefined && length > maxStreamed) {
          RelayMetrics.limitHit("body_too_large")
          return resume(Effect.fail(new PayloadTooLarge({ limit: maxStreamed })))
        }
        const id = mux.nextId()
        const { res } = request
        let x: Exchange
        const port = mux.open(id, sinkOf(id, () => x))
        x = {
          port,
          res,
          resume,
          cancelTimeout: () => {},
          length: undefined,
          written: 0,
          requestDone: false,
          responseDone: false,
          stopBody: () => {},
          pendingDone: [],
          sendTimer: undefined
        }
        const end = request.body !== undefined ? request.body.length === 0 : BodyLimit.hasNoBody(request.req)
        exchanges.set(id, x)
        const sent = conn.unsafeSend(RelayToHostV2Codec.encode({
          _tag: "http",
          stream: id,
          method: request.method,
          path: request.path,
          headers: request.headers,
          ...(length !== undefined ? { length } : {}),
          end
        }))
        if (!sent) {
          exchanges.delete(id)
          port.close()
          return resume(Effect.fail(new TunnelClosed({ hostId })))
        }
        ctx.earn(framesPerAnswer)
        x.cancelTimeout = deadlines.add(() => {
          if (x.resume !== undefined) failWaiting(id, x, new RequestTimeout({ hostId, ms: config.requestTimeoutMs }), "timeout")
        })
        res.on("drain", () => {
          if (x.sendTimer !== undefined) clearTimeout(x.sendTimer)
          x.sendTimer = undefined
          for (const done of x.pendingDone.splice(0)) done()
        })
        // The client went away (or its connection was cut): the host stops too.
        res.once("close", () => {
          if (exchanges.get(id) !== x) return
          if (x.resume !== undefined) return failWaiting(id, x, new TunnelClosed({ hostId }), "client gone")
          x.responseDone = true
          x.port.reset("client gone")
          settle(id, x)
        })
        if (end) x.requestDone = true
        else sendBody(id, x, request)
        // The caller was interrupted (the relay is stopping): the exchange goes with it.
        return Effect.sync(() => {
          if (exchanges.get(id) === x && x.resume !== undefined) {
            x.resume = undefined
            x.port.reset("relay stopped waiting")
            settle(id, x)
          }
        })
      })

    // ---- WebSockets ------------------------------------------------------------------------------

    const hasRoomForChannel = () =>
      channels.size < config.maxChannelsPerTunnel
        ? Effect.void
        : Effect.fail(new TooManyChannels({ hostId, limit: config.maxChannelsPerTunnel })).pipe(
          Effect.tap(() => Effect.sync(() => RelayMetrics.limitHit("channels")))
        )

    const openChannel = (client: Conn, open: ChannelOpen) =>
      Effect.suspend(() => {
        if (ctx.isClosing()) return client.close(CloseCodes.Internal, "tunnel closed")
        if (channels.size >= config.maxChannelsPerTunnel) return client.close(CloseCodes.TryAgainLater, "too many WebSockets")
        const id = mux.nextId()
        /** Running while bytes wait for a client that takes none: at its end the channel closes 1013. */
        let slowTimer: ReturnType<typeof setTimeout> | undefined
        const tooSlow = () => {
          slowTimer = undefined
          if (channels.get(id) !== channel) return
          channels.delete(id)
          RelayMetrics.limitHit("send_timeout")
          port.reset("client too slow")
          ctx.run(Effect.zipRight(
            client.close(CloseCodes.TryAgainLater, "client too slow"),
            ctx.logLimited("tunnel.channel_too_slow", { channelId: id, bufferedBytes: client.bufferedAmount(), waitedMs: config.sendTimeoutMs })
          ))
        }
        const port = mux.open(id, {
          // Credit goes back once the client's socket has taken the message: a client that does not
          // read holds a window of the host's messages, and the host's target waits. One that takes
          // nothing for the send timeout is closed 1013.
          onMessage: (data, text, done) => {
            client.unsafeSend(text ? data.toString() : data)
            if (client.bufferedAmount() === 0) return done()
            slowTimer ??= setTimeout(tooSlow, config.sendTimeoutMs)
            client.onDrain(() => {
              if (slowTimer !== undefined) clearTimeout(slowTimer)
              slowTimer = undefined
              done()
            })
          },
          onData: (_chunk, done) => {
            done()
            ctx.run(ctx.logLimited("tunnel.stream_problem", { problem: "body bytes on a WebSocket", stream: id }))
          },
          onEnd: () => {},
          onReset: () => {
            channels.delete(id)
            ctx.run(client.close(CloseCodes.Internal, "channel reset"))
          }
        })
        const opened = conn.unsafeSend(RelayToHostV2Codec.encode({
          _tag: "ws:open",
          stream: id,
          path: open.path,
          ...(open.query ? { query: open.query } : {}),
          headers: open.headers
        }))
        if (!opened) {
          port.close()
          return client.close(CloseCodes.Internal, "tunnel closed")
        }
        const channel = { client, port }
        channels.set(id, channel)
        let paused = false
        client.onMessage((frame) => {
          if (channels.get(id) !== channel) return
          const more = typeof frame === "string" ? port.message(Buffer.from(frame), true) : port.message(frame, false)
          if (more || paused) return
          // No credit toward the host: the client waits in its own socket.
          paused = true
          client.pause()
          port.onDrain(() => {
            paused = false
            client.resume()
          })
        })
        const untilClosed = Effect.flatMap(client.closed, (info) =>
          Effect.sync(() => {
            if (slowTimer !== undefined) clearTimeout(slowTimer)
            if (channels.get(id) !== channel) return
            channels.delete(id)
            port.close()
            conn.unsafeSend(RelayToHostV2Codec.encode({ _tag: "ws:close", stream: id, code: info.code, reason: LogLimits.clip(info.reason, 120) }))
          }))
        return Effect.withFiberRuntime<void>((fiber) => {
          fibers.add(fiber)
          return Effect.ensuring(untilClosed, Effect.sync(() => fibers.delete(fiber)))
        })
      })

    const onWsClose = (message: StreamWsClose): Effect.Effect<void> => {
      const channel = channels.get(message.stream)
      if (channel === undefined) return Effect.void
      channels.delete(message.stream)
      channel.port.close()
      return channel.client.close(message.code ?? CloseCodes.Normal, message.reason)
    }

    const closeChannels = (code: number, reason: string) =>
      Effect.suspend(() => {
        const all = [...channels.values()]
        channels.clear()
        for (const fiber of fibers) fiber.unsafeInterruptAsFork(FiberId.none)
        fibers.clear()
        return Effect.forEach(all, ({ client, port }) => Effect.zipRight(Effect.sync(() => port.close()), client.close(code, reason)), { discard: true })
      })

    const self: TunnelStreams = {
      http,
      hasRoomForChannel,
      openChannel,
      onMessage: (message) => {
        switch (message._tag) {
          case "http:response":
            onHead(message)
            return Effect.void
          case "reset":
            mux.onReset(message.stream, message.reason)
            return Effect.void
          case "ws:close":
            return onWsClose(message)
        }
      },
      onFrame: mux.onFrame,
      onBadResponse: (id, reason) => {
        const x = exchanges.get(id)
        if (x === undefined) return
        if (x.resume !== undefined) failWaiting(id, x, new BadResponseFromHost({ hostId, reason }), "bad response")
        else cut(id, x, "bad response")
      },
      failAll: () => {
        for (const [id, x] of [...exchanges]) {
          if (x.resume !== undefined) failWaiting(id, x, new TunnelClosed({ hostId }))
          else cut(id, x)
        }
        mux.closeAll("tunnel closed")
      },
      closeChannels,
      onSettled: undefined,
      size: () => exchanges.size,
      channelCount: () => channels.size,
      buffered: mux.buffered
    }
    return self
  })
