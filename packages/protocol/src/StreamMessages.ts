/**
 * Version 2's control messages: JSON text frames, each a `Schema` tagged by `type`, as in
 * version 1, but a request, a response and a WebSocket channel are a **stream**: the message
 * is only its head, and the bytes follow in binary frames (`StreamFrames.ts`) carrying the same
 * stream id, paced by credit.
 *
 * Which version a tunnel speaks is agreed on its upgrade with `Sec-WebSocket-Protocol`: an agent
 * of this release offers `effect-relay.1, effect-relay.2` (in that order, so a relay from before
 * version 2, which picks the first offered, answers version 1); a relay that speaks version 2
 * picks it. An agent that offers nothing speaks version 1.
 */
import { Schema } from "effect"
import { codec, DrainMessage, Headers, Hello, Ping, Pong } from "./Messages.js"
import { maxStreamId } from "./StreamFrames.js"

/** The subprotocols a tunnel may speak. */
export const TunnelProtocols = {
  v1: "effect-relay.1",
  v2: "effect-relay.2"
} as const

/**
 * The agent's receive windows, on its upgrade request: `stream=<bytes>, tunnel=<bytes>`. The
 * relay's go the other way in `hello`.
 */
export const WindowHeader = "effect-relay-window"

export interface Windows {
  /** Bytes of one stream the peer may send before it is granted more. */
  readonly stream: number
  /** Bytes of all streams together the peer may send before it is granted more. */
  readonly tunnel: number
}

/**
 * The windows a peer that announces nothing is taken to have (what version 2 first shipped with):
 * the least either side may assume before it hears the other's.
 */
export const defaultWindows: Windows = { stream: 256 * 1024, tunnel: 4 * 1024 * 1024 }

/**
 * What the relay and the agent take in unless set otherwise (STREAM_WINDOW_BYTES,
 * TUNNEL_WINDOW_BYTES), and announce. 256 KiB per stream took a 1 MiB response at c=1 four credit
 * round trips: 5.2-5.9 ms against 3.3 ms with 512 KiB (the two-proxy chain: 2.7 ms).
 */
export const settingsWindows: Windows = { stream: 512 * 1024, tunnel: 4 * 1024 * 1024 }

/** The windows a header announces (each clamped to [1 KiB, 2 GiB)); what it does not say is the default. */
export const parseWindows = (header: string | ReadonlyArray<string> | undefined): Windows => {
  const text = typeof header === "string" ? header : (header ?? []).join(",")
  const read = (name: string, fallback: number) => {
    const match = new RegExp(`(?:^|[,;\\s])${name}=(\\d{1,10})`).exec(text)
    if (match === null) return fallback
    return Math.min(Math.max(Number(match[1]), 1024), 0x7fff_ffff)
  }
  return { stream: read("stream", defaultWindows.stream), tunnel: read("tunnel", defaultWindows.tunnel) }
}

export const windowsHeader = (windows: Windows): string => `stream=${windows.stream}, tunnel=${windows.tunnel}`

const StreamId = Schema.Number.pipe(Schema.int(), Schema.between(1, maxStreamId))

/** A body's declared length in bytes (`Content-Length`); absent when it is not known in advance (chunked). */
const Length = Schema.optional(Schema.Number.pipe(Schema.int(), Schema.between(0, Number.MAX_SAFE_INTEGER)))

/** A client's request head, relay -> host. Unless `end`, its body follows as Data frames and an End. */
export const StreamRequest = Schema.TaggedStruct("http", {
  stream: StreamId,
  method: Schema.String.pipe(Schema.maxLength(64)),
  path: Schema.String,
  headers: Headers,
  length: Length,
  end: Schema.Boolean
})
export interface StreamRequest extends Schema.Schema.Type<typeof StreamRequest> {}

/** The target's response head, host -> relay. Unless `end`, its body follows as Data frames and an End. */
export const StreamResponse = Schema.TaggedStruct("http:response", {
  stream: StreamId,
  status: Schema.Number.pipe(Schema.int(), Schema.between(100, 599)),
  headers: Headers,
  length: Length,
  end: Schema.Boolean
})
export interface StreamResponse extends Schema.Schema.Type<typeof StreamResponse> {}

/** A client's WebSocket, relay -> host: open one to the target. Its messages are WsText / WsBinary frames. */
export const StreamWsOpen = Schema.TaggedStruct("ws:open", {
  stream: StreamId,
  path: Schema.String,
  query: Schema.optional(Schema.String),
  headers: Schema.optional(Headers)
})
export interface StreamWsOpen extends Schema.Schema.Type<typeof StreamWsOpen> {}

/** That WebSocket closed (either way). */
export const StreamWsClose = Schema.TaggedStruct("ws:close", {
  stream: StreamId,
  code: Schema.optional(Schema.Number),
  reason: Schema.optional(Schema.String.pipe(Schema.maxLength(200)))
})
export interface StreamWsClose extends Schema.Schema.Type<typeof StreamWsClose> {}

/**
 * The stream is abandoned (either way): the client went away or the relay stopped waiting
 * (relay -> host: stop the target's request), the target failed mid-body (host -> relay: cut the
 * client's connection, never pass a short body off as complete), or a peer broke the stream's
 * credit. Bytes of it still on their way are dropped.
 */
export const StreamReset = Schema.TaggedStruct("reset", {
  stream: StreamId,
  reason: Schema.optional(Schema.String.pipe(Schema.maxLength(200)))
})
export interface StreamReset extends Schema.Schema.Type<typeof StreamReset> {}

export const RelayToHostV2 = Schema.Union(StreamRequest, StreamWsOpen, StreamWsClose, StreamReset, Ping, DrainMessage, Hello)
export type RelayToHostV2 = typeof RelayToHostV2.Type

export const HostToRelayV2 = Schema.Union(StreamResponse, StreamWsClose, StreamReset, Pong, DrainMessage)
export type HostToRelayV2 = typeof HostToRelayV2.Type

export const RelayToHostV2Codec = codec(RelayToHostV2)
export const HostToRelayV2Codec = codec(HostToRelayV2)
