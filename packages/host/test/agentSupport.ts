/**
 * A fake relay over real WebSockets and the helpers the host agent's tests share: start an
 * agent in its own scope, capture its logs, read its reconnect counters.
 */
import {
  CloseCodes,
  CloseReasons,
  Features,
  FeaturesHeader,
  Hello,
  HostToRelayCodec,
  InstanceHeader,
  parseFeatures,
  RelayToHostCodec
} from "@effect-relay/protocol"
import { Context, Deferred, Duration, Effect, Either, Exit, HashMap, Layer, List, Logger, Metric, Queue, Scope } from "effect"
import type { IncomingMessage } from "node:http"
import type { WebSocket } from "ws"
import { HostAgent, type HostAgentConfig, HostAgentLive, reconnectsFor } from "../src/index.js"
import { httpServer, wsServer } from "./servers.js"

export const token = "s3cret-token-value"

export interface RelayConnection {
  readonly socket: WebSocket
  readonly request: IncomingMessage
  readonly at: number
  readonly frames: Queue.Queue<string>
  readonly closed: Deferred.Deferred<{ readonly code: number; readonly reason: string }>
  /** The relay this connection landed on (behind the fake's one URL), when the fake greets. */
  readonly relayId?: string
}

export interface FakeRelayOptions {
  /**
   * The relay the n-th tunnel (0-based) lands on behind this URL: greeted with
   * `{type:"hello", relayId}` when the agent announced the feature. Unset: an older relay that
   * never says hello.
   */
  readonly relayIdFor?: (n: number) => string
  /** Close with 4003 a tunnel landing on a relay that already holds an open one of the same instance. */
  readonly refuseHeldHere?: boolean
  /** Anything else to do with the n-th tunnel (0-based) as it opens (after the hello, if any). */
  readonly onOpen?: (socket: WebSocket, n: number) => void
}

/**
 * A stand-in relay: accepts tunnels at /tunnel (or refuses them with
 * `refuseWith` as HTTP status) and hands each connection to the test.
 */
export const fakeRelay = (refuseWith?: number, options: FakeRelayOptions = {}) =>
  Effect.gen(function*() {
    let refusingUntil = 0
    const server = yield* wsServer({
      verifyClient: (_info, done) =>
        Date.now() < refusingUntil ? done(false, 503) : refuseWith === undefined ? done(true) : done(false, refuseWith)
    })
    const connections = yield* Queue.unbounded<RelayConnection>()
    // Open tunnels by `${relayId} ${instance}`.
    const held = new Set<string>()
    let count = 0
    server.wss.on("connection", (socket, request) => {
      const frames = Effect.runSync(Queue.unbounded<string>())
      const closed = Deferred.unsafeMake<{ code: number; reason: string }>(undefined as never)
      socket.on("message", (data) => Queue.unsafeOffer(frames, data.toString()))
      socket.on("close", (code, reason) => Deferred.unsafeDone(closed, Effect.succeed({ code, reason: reason.toString() })))
      const n = count++
      const relayId = options.relayIdFor?.(n)
      if (relayId !== undefined) {
        const key = `${relayId} ${request.headers[InstanceHeader]}`
        if (options.refuseHeldHere && held.has(key)) socket.close(CloseCodes.HeldHere, CloseReasons.HeldHere)
        else {
          held.add(key)
          socket.on("close", () => held.delete(key))
          if (parseFeatures(request.headers[FeaturesHeader]).has(Features.hello)) {
            socket.send(RelayToHostCodec.encode(Hello.make({ relayId, region: relayId.split(":")[0]!, tunnelId: `t${n}` })))
          }
        }
      }
      options.onOpen?.(socket, n)
      Queue.unsafeOffer(connections, { socket, request, at: Date.now(), frames, closed, ...(relayId !== undefined ? { relayId } : {}) })
    })
    const nextConnection = Queue.take(connections).pipe(
      Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("no tunnel arrived") })
    )
    /** Answers upgrades with 503 for a while, like a relay that is restarting. */
    const refuseFor = (duration: Duration.DurationInput) =>
      Effect.sync(() => {
        refusingUntil = Date.now() + Duration.toMillis(duration)
      })
    return { ...server, connections, nextConnection, refuseFor }
  })

export const nextFrame = (connection: RelayConnection) =>
  Queue.take(connection.frames).pipe(
    Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("no frame from the host") }),
    Effect.map((text) => Either.getOrThrow(HostToRelayCodec.decode(text)))
  )

export const target = httpServer((req, res) => res.end(`target saw ${req.method} ${req.url}`))

/** Log lines, captured so tests can check what is (and is not) logged. */
export const captureLogs = Effect.gen(function*() {
  const lines: Array<{ message: unknown; annotations: Record<string, unknown>; text: string }> = []
  const logger = Logger.make(({ annotations, message }) => {
    const record = Object.fromEntries(HashMap.toEntries(annotations))
    lines.push({ message: List.isList(message) ? List.toArray(message) : message, annotations: record, text: JSON.stringify({ message, record }) })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
})

export const config = (relayUrl: string, targetUrl: string, extra: Partial<HostAgentConfig> = {}): HostAgentConfig => ({
  relayUrl,
  hostId: "acme:laptop",
  token,
  targetUrl,
  drainJitterMs: 50,
  backoffBaseMs: 2_000,
  backoffCapMs: 2_000,
  ...extra
})

/** Starts the agent in its own scope, so a test can stop it. */
export const startAgent = (agentConfig: HostAgentConfig, logger: Layer.Layer<never>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const stop = Scope.close(scope, Exit.void)
    yield* Effect.addFinalizer(() => stop)
    const context = yield* Layer.buildWithScope(HostAgentLive(agentConfig), scope).pipe(Effect.provide(logger))
    return { agent: Context.get(context, HostAgent), stop }
  })

export const reconnects = (reason: string) => Metric.value(reconnectsFor(reason)).pipe(Effect.map((state) => state.count))

export const linesOf = <L extends { readonly message: unknown }>(logs: { readonly lines: ReadonlyArray<L> }, event: string) =>
  logs.lines.filter((line) => JSON.stringify(line.message).includes(event))


/** Polls `check` every 20 ms until it returns true (or dies after `timeoutMs`). */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, timeoutMs = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("20 millis")
    }
  })
