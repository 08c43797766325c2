/**
 * A version 2 session's streams, agent side: each request from the relay becomes a request to the
 * target whose body is written as it arrives, and whose response head and body go back to the
 * relay as the target sends them; each WebSocket channel becomes a WebSocket to the target.
 *
 * Both ways are paced by the stream's credit (`StreamMux`): the target's response is not read
 * while the relay has not passed on what it already got (TCP backpressure reaches the target: its
 * `write` returns false), and credit for the client's body goes back to the relay only once the
 * target's socket took the bytes. A `reset` from the relay (the client went away) stops the
 * target's request; a target that fails mid-body resets the stream, so the relay cuts the
 * client's connection instead of passing a short body off as complete.
 */
import {
  CloseCodes,
  Deadlines,
  defaultWindows,
  HostToRelayV2Codec,
  KeepAliveRetry,
  LogLimits,
  type RelayToHostV2,
  type StreamMux as Mux,
  StreamMux,
  type StreamRequest,
  type StreamWsOpen,
  Transport,
  type Windows
} from "@effect-relay/protocol"
import { Cause, Effect, Exit, FiberMap, Runtime, type Scope } from "effect"
import type * as http from "node:http"
import { type TargetError, targetErrorStatus, TargetTimeout, TargetUnreachable } from "./Errors.js"
import { endToEnd, fromRawHeaders } from "./Hop.js"
import { handshakeHeaders, protocolsOf, TargetUnreachableCode, TargetUnreachableReason, targetWsUrl } from "./TargetChannels.js"
import type { TargetHttp } from "./TargetHttp.js"

export interface TargetStreamsOptions {
  readonly targetUrl: string
  readonly requestTimeoutMs: number
  readonly connectTimeoutMs: number
  /** What this agent takes in per stream and per tunnel (announced on the upgrade). */
  readonly windows: Windows
}

export interface TargetStreams {
  /** A control message from the relay other than ping, drain and hello. */
  readonly onMessage: (message: Exclude<RelayToHostV2, { readonly _tag: "ping" | "drain" | "hello" }>) => Effect.Effect<void>
  /** A binary frame from the relay. */
  readonly onFrame: (frame: Uint8Array) => void
  /** The relay's windows, from its hello. */
  readonly setPeerWindows: (windows: Windows) => void
  /** Streams in flight (HTTP and WebSocket). */
  readonly size: () => number
}

/** Bytes a stream's socket toward the relay may queue before the agent stops reading the target. */
const sendBufferBytes = 1024 * 1024

/** The declared length of a response body, when it has one node will hold it to. */
const lengthOf = (response: http.IncomingMessage): number | undefined => {
  const value = response.headers["content-length"]
  if (value === undefined || response.headers["transfer-encoding"] !== undefined) return undefined
  const n = Number(value)
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))

export const make = (
  options: TargetStreamsOptions,
  conn: Transport.Transport,
  target: TargetHttp["Type"]
): Effect.Effect<TargetStreams, never, Scope.Scope> =>
  Effect.gen(function*() {
    const deadlines = yield* Deadlines.make(options.requestTimeoutMs)
    const run = Runtime.runFork(yield* Effect.runtime<never>())
    const channels = yield* FiberMap.make<number>()
    const runChannel = yield* FiberMap.runtime(channels)<never>()
    /** Stops for the HTTP streams in flight: the session's end stops them all. */
    const inFlight = new Map<number, () => void>()
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const stop of [...inFlight.values()]) stop()
        mux.closeAll("session ended")
      })
    )
    const logProblem = LogLimits.gate(5, 10_000)

    const mux = StreamMux.make({
      conn,
      windows: options.windows,
      // Until the relay's hello says otherwise (it comes first): what a relay that announces
      // nothing takes, never this agent's own (larger) windows.
      peerWindows: defaultWindows,
      sendBufferBytes,
      encodeReset: (stream, reason) => HostToRelayV2Codec.encode({ _tag: "reset", stream, reason }),
      onProblem: (problem, stream) => {
        const suppressed = logProblem.admit()
        if (suppressed !== undefined) {
          run(Effect.logWarning("tunnel.stream_problem").pipe(Effect.annotateLogs({ problem, stream: stream ?? null, ...(suppressed > 0 ? { suppressed } : {}) })))
        }
      }
    })

    const sendHead = (stream: number, status: number, headers: Record<string, string | Array<string>>, length: number | undefined, end: boolean) =>
      conn.unsafeSend(HostToRelayV2Codec.encode({ _tag: "http:response", stream, status, headers, ...(length !== undefined ? { length } : {}), end }))

    // ---- HTTP ------------------------------------------------------------------------------------

    const onRequest = (head: StreamRequest) => {
      const id = head.stream
      let outgoing: http.ClientRequest | undefined
      let response: http.IncomingMessage | undefined
      let headSent = false
      let finished = false
      let requestEnded = head.end
      let responseEnded = false
      let bodyBytesWritten = 0
      let retried = false
      const waitingForTarget: Array<() => void> = []
      let cancelTimeout = () => {}

      const finish = () => {
        if (finished) return
        finished = true
        cancelTimeout()
        inFlight.delete(id)
      }
      const stop = () => {
        finish()
        outgoing?.destroy()
        response?.destroy()
        port.reset("session ended")
      }
      const maybeDone = () => {
        if (!requestEnded || !responseEnded) return
        finish()
        port.close()
      }

      /** No response from the target: the relay gets one that says why (the detail is in the log line). */
      const answerWith = (error: TargetError) => {
        if (headSent || finished) return
        headSent = true
        run(Effect.logWarning("http.target_error").pipe(
          Effect.annotateLogs({ error: error._tag, detail: error.message, stream: id, method: head.method })
        ))
        const { code, message, status } = targetErrorStatus(error)
        const body = Buffer.from(JSON.stringify({ error: code, message }))
        sendHead(id, status, { "content-type": "application/json" }, body.length, false)
        port.write(body)
        port.end()
        responseEnded = true
        // What the client still sends is not wanted.
        if (!requestEnded) {
          finish()
          port.reset("answered")
        } else maybeDone()
        outgoing?.destroy()
      }

      const port: Mux.StreamPort = mux.open(id, {
        onData: (chunk, done) => {
          if (outgoing === undefined || finished) return done()
          bodyBytesWritten += chunk.length
          if (outgoing.write(chunk)) done()
          else waitingForTarget.push(done)
        },
        onEnd: () => {
          requestEnded = true
          if (!finished) outgoing?.end()
          maybeDone()
        },
        onReset: () => {
          finish()
          outgoing?.destroy()
          response?.destroy()
        }
      })

      const onResponse = (answer: http.IncomingMessage) => {
        if (finished) return answer.resume()
        cancelTimeout()
        response = answer
        const status = answer.statusCode ?? 0
        if (!Number.isInteger(status) || status < 200 || status > 599) {
          answer.resume()
          return answerWith(new TargetUnreachable({ detail: `status ${status} cannot be forwarded` }))
        }
        const length = lengthOf(answer)
        const bodiless = head.method === "HEAD" || status === 204 || status === 304 || length === 0
        headSent = true
        sendHead(id, status, fromRawHeaders(answer.rawHeaders), bodiless ? undefined : length, bodiless)
        if (bodiless) {
          answer.resume()
          responseEnded = true
          return maybeDone()
        }
        answer.on("data", (chunk: Buffer) => {
          if (port.write(chunk)) return
          // The relay has not passed on what it has: the target waits (its socket fills, its write returns false).
          answer.pause()
          port.onDrain(() => answer.resume())
        })
        answer.on("end", () => {
          if (finished) return
          port.end()
          responseEnded = true
          maybeDone()
        })
        answer.on("close", () => {
          if (finished || answer.complete) return
          // The target stopped mid-body: the client must see a failure, not a short body.
          run(Effect.logWarning("http.target_error").pipe(Effect.annotateLogs({ error: "TargetResponseFailed", detail: "the response ended before its body", stream: id })))
          finish()
          port.reset("target failed")
        })
      }

      const start = () => {
        const headers: Record<string, string | ReadonlyArray<string>> = { ...endToEnd(head.headers) }
        if (head.length !== undefined) headers["content-length"] = String(head.length)
        else if (!head.end) headers["transfer-encoding"] = "chunked"
        let request: http.ClientRequest
        try {
          request = target.open({ method: head.method, path: head.path, headers })
        } catch (error) {
          return answerWith(new TargetUnreachable({ detail: describe(error) }))
        }
        outgoing = request
        request.on("drain", () => {
          for (const done of waitingForTarget.splice(0)) done()
        })
        request.on("response", onResponse)
        request.on("error", (error) => {
          if (finished || request !== outgoing) return
          if (response !== undefined) return // the response's own close says what happened
          // A kept-alive socket the target closed as it was reused: nothing reached it, so once more.
          if (!retried && bodyBytesWritten === 0 && KeepAliveRetry.isStaleSocket(request, error)) {
            retried = true
            start()
            if (requestEnded) outgoing?.end()
            return
          }
          answerWith(new TargetUnreachable({ detail: describe(error) }))
        })
        if (head.end) request.end()
      }

      inFlight.set(id, stop)
      cancelTimeout = deadlines.add(() => {
        if (!headSent) answerWith(new TargetTimeout({ timeoutMs: options.requestTimeoutMs }))
      })
      start()
    }

    // ---- WebSockets ------------------------------------------------------------------------------

    const targets = new Map<number, { target: Transport.Transport | undefined; readonly port: Mux.StreamPort }>()

    const onWsOpen = (open: StreamWsOpen) => {
      const id = open.stream
      /** Messages that came while the target's WebSocket was opening: credit-bounded, so few. */
      const early: Array<readonly [Buffer, boolean, () => void]> = []
      const toTarget = (socket: Transport.Transport, data: Buffer, text: boolean, done: () => void) => {
        socket.unsafeSend(text ? data.toString() : data)
        if (socket.bufferedAmount() === 0) done()
        else socket.onDrain(done)
      }
      const port = mux.open(id, {
        onMessage: (data, text, done) => {
          const socket = targets.get(id)?.target
          if (socket === undefined) early.push([data, text, done])
          else toTarget(socket, data, text, done)
        },
        onData: (_chunk, done) => done(),
        onEnd: () => {},
        onReset: () => {
          const socket = targets.get(id)?.target
          targets.delete(id)
          if (socket !== undefined) run(socket.close(CloseCodes.Internal, "channel reset"))
          else run(FiberMap.remove(channels, id))
        }
      })
      const entry = { target: undefined as Transport.Transport | undefined, port }
      targets.set(id, entry)

      const life = Effect.gen(function*() {
        const connected = yield* Effect.disconnect(Effect.exit(
          Transport.connect(targetWsUrl(options.targetUrl, open), {
            headers: handshakeHeaders(open),
            protocols: protocolsOf(open),
            timeoutMs: options.connectTimeoutMs
          })
        ))
        if (Exit.isFailure(connected)) {
          if (Cause.isInterruptedOnly(connected.cause)) return yield* Effect.interrupt
          const error = Cause.squash(connected.cause)
          yield* Effect.logWarning("ws.target_unreachable").pipe(Effect.annotateLogs({ detail: describe(error), stream: id }))
          if (targets.get(id) === entry) {
            targets.delete(id)
            port.close()
            conn.unsafeSend(HostToRelayV2Codec.encode({ _tag: "ws:close", stream: id, code: TargetUnreachableCode, reason: TargetUnreachableReason }))
          }
          return
        }
        const socket = connected.value
        if (targets.get(id) !== entry) return yield* socket.close(CloseCodes.Normal, "")
        entry.target = socket
        yield* Effect.logDebug("ws.open")
        for (const [data, text, done] of early.splice(0)) toTarget(socket, data, text, done)
        let paused = false
        socket.onMessage((frame) => {
          const more = typeof frame === "string" ? port.message(Buffer.from(frame), true) : port.message(frame, false)
          if (more || paused) return
          // The relay has not passed on what it has: the target's socket is not read meanwhile.
          paused = true
          socket.pause()
          port.onDrain(() => {
            paused = false
            socket.resume()
          })
        })
        const info = yield* socket.closed
        if (targets.get(id) === entry) {
          targets.delete(id)
          port.close()
          conn.unsafeSend(HostToRelayV2Codec.encode({ _tag: "ws:close", stream: id, code: info.code, reason: LogLimits.clip(info.reason, 120) }))
        }
      }).pipe(Effect.scoped, Effect.annotateLogs({ channelId: id }))
      runChannel(id, life)
    }

    const onWsClose = (stream: number, code: number | undefined, reason: string | undefined) => {
      const entry = targets.get(stream)
      if (entry === undefined) return Effect.void
      targets.delete(stream)
      entry.port.close()
      if (entry.target === undefined) return FiberMap.remove(channels, stream)
      return entry.target.close(code ?? CloseCodes.Normal, reason)
    }

    return {
      onMessage: (message) => {
        switch (message._tag) {
          case "http":
            onRequest(message)
            return Effect.void
          case "reset":
            mux.onReset(message.stream, message.reason)
            return Effect.void
          case "ws:open":
            onWsOpen(message)
            return Effect.void
          case "ws:close":
            return onWsClose(message.stream, message.code, message.reason)
        }
      },
      onFrame: mux.onFrame,
      setPeerWindows: mux.setPeerWindows,
      size: mux.size
    } satisfies TargetStreams
  })

