import { Data, Effect, Either, ParseResult, Schema, SchemaAST } from "effect"
import { clip } from "./LogLimits.js"

/**
 * The tunnel's wire format: JSON text frames, one message each, a tagged union
 * by `type`. Every frame is decoded at the boundary with these schemas.
 */

/** HTTP headers as they travel: repeated headers (set-cookie) stay arrays. */
export const Headers = Schema.Record({
  key: Schema.String,
  value: Schema.Union(Schema.String, Schema.Array(Schema.String))
})
export type Headers = typeof Headers.Type

/** Bodies and frames that are not valid UTF-8 travel base64-encoded. */
export const Encoding = Schema.Literal("base64")

const Id = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64))

// relay -> host

export const HttpRequest = Schema.TaggedStruct("http", {
  id: Id,
  method: Schema.String,
  path: Schema.String,
  headers: Headers,
  body: Schema.optional(Schema.String),
  bodyEncoding: Schema.optional(Encoding)
})
export interface HttpRequest extends Schema.Schema.Type<typeof HttpRequest> {}

export const WsOpen = Schema.TaggedStruct("ws:open", {
  id: Id,
  path: Schema.String,
  query: Schema.optional(Schema.String),
  headers: Schema.optional(Headers)
})
export interface WsOpen extends Schema.Schema.Type<typeof WsOpen> {}

export const Ping = Schema.TaggedStruct("ping", {
  ts: Schema.Number
})
export interface Ping extends Schema.Schema.Type<typeof Ping> {}

/**
 * The relay's first frame on a tunnel it accepted, to agents that announce `hello`: who it is, so
 * an agent holding several tunnels knows they are on different relays.
 */
export const Hello = Schema.TaggedStruct("hello", {
  /** `{region}:{machineId}` of the relay. */
  relayId: Schema.String.pipe(Schema.maxLength(200)),
  region: Schema.String.pipe(Schema.maxLength(100)),
  tunnelId: Id,
  /** Version 2: the relay's receive windows, in bytes, per stream and for the whole tunnel. */
  streamWindow: Schema.optional(Schema.Number.pipe(Schema.int(), Schema.between(1024, 0x7fff_ffff))),
  tunnelWindow: Schema.optional(Schema.Number.pipe(Schema.int(), Schema.between(1024, 0x7fff_ffff)))
})
export interface Hello extends Schema.Schema.Type<typeof Hello> {}

/**
 * The client of request `id` went away, or the relay stopped waiting for it (timeout): the host
 * stops its call to the target. Sent only to hosts that announce the `cancel` feature.
 */
export const HttpCancel = Schema.TaggedStruct("http:cancel", {
  id: Id
})
export interface HttpCancel extends Schema.Schema.Type<typeof HttpCancel> {}

export const DrainMessage = Schema.TaggedStruct("drain", {
  reason: Schema.optional(Schema.String),
  /**
   * Come back within this many ms, at a moment picked at random in the window: the relay spreads
   * its hosts' re-dials over it (a host with another tunnel loses nothing by waiting).
   */
  reconnectWithinMs: Schema.optional(Schema.Number.pipe(Schema.int(), Schema.between(0, 60_000)))
})
export interface DrainMessage extends Schema.Schema.Type<typeof DrainMessage> {}

// both ways

export const WsFrame = Schema.TaggedStruct("ws:frame", {
  id: Id,
  data: Schema.String,
  encoding: Schema.optional(Encoding)
})
export interface WsFrame extends Schema.Schema.Type<typeof WsFrame> {}

export const WsClose = Schema.TaggedStruct("ws:close", {
  id: Id,
  code: Schema.optional(Schema.Number),
  reason: Schema.optional(Schema.String)
})
export interface WsClose extends Schema.Schema.Type<typeof WsClose> {}

// host -> relay

export const HttpResponse = Schema.TaggedStruct("http:response", {
  id: Id,
  status: Schema.Number.pipe(Schema.int(), Schema.between(100, 599)),
  headers: Headers,
  body: Schema.optional(Schema.String),
  bodyEncoding: Schema.optional(Encoding)
})
export interface HttpResponse extends Schema.Schema.Type<typeof HttpResponse> {}

export const Pong = Schema.TaggedStruct("pong", {
  ts: Schema.Number
})
export interface Pong extends Schema.Schema.Type<typeof Pong> {}

export const RelayToHost = Schema.Union(HttpRequest, HttpCancel, WsOpen, WsFrame, WsClose, Ping, DrainMessage, Hello)
export type RelayToHost = typeof RelayToHost.Type

/**
 * Host -> relay, the same `drain` shape: this agent is stopping. The relay routes no new request
 * to the tunnel (the host's next instance, or its other relay, takes them), and the agent closes
 * it once its requests in flight are answered. Sent only to relays that said `hello`.
 */
export const HostToRelay = Schema.Union(HttpResponse, WsFrame, WsClose, Pong, DrainMessage)
export type HostToRelay = typeof HostToRelay.Type

/**
 * The tagged classes use `_tag` in memory; on the wire the tag is `type`.
 * These codecs rename it both ways.
 */
const wire = <A extends { readonly _tag: string }, I extends { readonly _tag: string }>(
  schema: Schema.Schema<A, I>,
  types: ReadonlySet<string>
) => {
  const fromObject = Schema.decodeUnknownEither(schema)
  return {
    decode: (text: string): Either.Either<A, FrameError> => {
      // Every message is a JSON object: anything else is told without parsing it.
      if (text.charCodeAt(0) !== 123 /* { */) return Either.left(new FrameError({ problem: "not a JSON object" }))
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        return Either.left(new FrameError({ problem: "not JSON" }))
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        return Either.left(new FrameError({ problem: "not a JSON object" }))
      }
      const { type, ...rest } = parsed as Record<string, unknown>
      if (typeof type !== "string") {
        return Either.left(new FrameError({ problem: "no type field" }))
      }
      // An unknown type is told at once: the union's own error would list every member, a cost
      // a peer could make the relay pay for every frame.
      if (!types.has(type)) return Either.left(new FrameError({ type: clip(type, 64), problem: "unknown type" }))
      return Either.mapLeft(
        fromObject({ _tag: type, ...rest }),
        (e) =>
          new FrameError({
            // Both come from the peer: cut, so a bad frame cannot make a large log line.
            type: clip(type, 64),
            problem: describeIssue(e.issue),
            ...(typeof rest.id === "string" && rest.id.length > 0 && rest.id.length <= 64 ? { id: rest.id } : {}),
            ...(typeof rest.stream === "number" && Number.isInteger(rest.stream) && rest.stream > 0 && rest.stream <= 0xffff_ffff ? { stream: rest.stream } : {})
          })
      )
    },
    // Every message's encoded form is its fields as they are (strings, numbers, header records):
    // a message built by its class is already valid, so encoding is renaming the tag. The codec
    // tests check this against the schema's own encoder for every message type.
    encode: (message: A): string => {
      const { _tag, ...rest } = message as A & Record<string, unknown>
      return JSON.stringify({ type: _tag, ...rest })
    }
  }
}

/**
 * Where a frame's fields went wrong, as `invalid <path> (<kind>)`: from the parse issue's path
 * alone, never by printing the value (a peer's value may be megabytes, or nested thousands deep).
 */
const describeIssue = (issue: ParseResult.ParseIssue): string => {
  const path: Array<string> = []
  let current: ParseResult.ParseIssue = issue
  for (let depth = 0; depth < 32; depth++) {
    if (current._tag === "Pointer") {
      const keys = Array.isArray(current.path) ? current.path : [current.path]
      for (const key of keys) path.push(clip(String(key), 40))
      current = current.issue
    } else if (current._tag === "Composite") {
      current = Array.isArray(current.issues) ? current.issues[0]! : current.issues as ParseResult.ParseIssue
    } else if (current._tag === "Refinement" || current._tag === "Transformation") {
      current = current.issue
    } else break
  }
  const kind = current._tag === "Type" ? "wrong type" : current._tag === "Missing" ? "missing" : current._tag === "Unexpected" ? "unexpected" : "invalid"
  return `invalid ${path.length > 0 ? path.join(".") : "frame"} (${kind})`
}

/** A bad frame as a log line: `tunnel.bad_frame {problem, type}`. */
export const logBadFrame = (error: FrameError): Effect.Effect<void> =>
  Effect.logWarning("tunnel.bad_frame").pipe(Effect.annotateLogs({ problem: error.problem, type: error.type ?? null }))

let binaryFrame: FrameError | undefined

/**
 * A tunnel's frame handler: each text frame is decoded and handed to `handle`; a frame that
 * does not decode (binary, not JSON, unknown type, wrong fields) goes to `onBad` (by default
 * logged as `tunnel.bad_frame`) and is dropped, and the tunnel goes on.
 */
const handlerOf = <A>(decode: (text: string) => Either.Either<A, FrameError>) =>
<R>(
  handle: (message: A) => Effect.Effect<void, never, R>,
  onBad: (error: FrameError) => Effect.Effect<void, never, R> = logBadFrame
) =>
(frame: string | Uint8Array): Effect.Effect<void, never, R> => {
  if (typeof frame !== "string") return onBad(binaryFrame ??= new FrameError({ problem: "binary frame" }))
  const decoded = decode(frame)
  return decoded._tag === "Left" ? onBad(decoded.left) : handle(decoded.right)
}

/**
 * A frame that is not a message we know: logged and answered, never a crash. (A plain tagged value,
 * not an Error with a stack: one is made for every bad frame a peer sends, so it must cost next
 * to nothing.)
 */
export class FrameError extends Data.TaggedClass("FrameError")<{
  readonly type?: string
  readonly problem: string
  /** The frame's `id`, when it had a plausible one: the request or channel it was meant for. */
  readonly id?: string
  /** The same for version 2: the frame's `stream`, when it had a plausible one. */
  readonly stream?: number
}> {
  get message() {
    return `bad frame${this.type ? ` (type ${this.type})` : ""}: ${this.problem}`
  }
}

/** A union of tagged structs as a wire codec: `decode`, `encode`, and a frame `handler`. */
export const codec = <A extends { readonly _tag: string }, I extends { readonly _tag: string }>(schema: Schema.Schema<A, I>) => {
  const members = (schema as unknown as { readonly members: ReadonlyArray<Schema.Schema<any, any>> }).members
  const types = new Set(members.map(tagOf))
  const base = wire(schema, types)
  return { ...base, handler: handlerOf(base.decode) }
}

/** The `_tag` literal of a tagged struct schema. */
const tagOf = (member: Schema.Schema<any, any>): string => {
  const ast = member.ast
  const tag = SchemaAST.isTypeLiteral(ast) ? ast.propertySignatures.find((p) => p.name === "_tag")?.type : undefined
  if (tag === undefined || !SchemaAST.isLiteral(tag) || typeof tag.literal !== "string") throw new Error("a wire message must be a TaggedStruct")
  return tag.literal
}

export const RelayToHostCodec = codec(RelayToHost)
export const HostToRelayCodec = codec(HostToRelay)

/**
 * Optional frames a host agent understands, announced on the tunnel's upgrade request in this
 * header (comma-separated): the relay sends them only to hosts that do, so an older agent never
 * sees a frame it does not know.
 */
export const FeaturesHeader = "effect-relay-features"
export const Features = {
  /** `http:cancel`: the agent stops a request the client gave up on. */
  cancel: "cancel",
  /** `hello`: the relay's first frame says which relay it is (an agent with several tunnels). */
  hello: "hello"
} as const

/**
 * The agent process's instance id, sent on the upgrade request in this header: random per start.
 * Tunnels of one instance coexist on different relays; a new instance of a hostId replaces the
 * older instance's tunnels everywhere.
 */
export const InstanceHeader = "effect-relay-instance"

/**
 * Which of its instance's sessions (0, 1, ...) a tunnel is, sent with the instance header: a
 * session holds one tunnel at a time, so a tunnel of the same session replaces it where it lands,
 * while another session's tunnel landing on the same relay is told to try another (4003).
 */
export const SessionHeader = "effect-relay-session"

/** The features a tunnel's upgrade request announced. */
export const parseFeatures = (header: string | ReadonlyArray<string> | undefined): ReadonlySet<string> =>
  new Set((typeof header === "string" ? header : (header ?? []).join(",")).split(",").map((f) => f.trim()).filter((f) => f.length > 0))
