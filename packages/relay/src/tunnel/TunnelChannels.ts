/**
 * A tunnel's client WebSockets ("channels"): each is opened on the host with `ws:open`, and its
 * frames cross both ways as `ws:frame` until either side sends `ws:close`. Both directions are
 * bounded: a client that reads nothing is closed 1013 once `WS_BUFFER_BYTES` wait for it; a
 * client is not read while more than `TUNNEL_BUFFER_BYTES` wait to go to the host.
 */
import { CloseCodes, decodeBytes, type Headers, type HostId, RelayToHostCodec, type Transport, type WsClose, type WsFrame } from "@effect-relay/protocol"
import { Effect, type Fiber, FiberId } from "effect"
import type { RelaySettings } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { TooManyChannels } from "./TunnelErrors.js"

type Conn = Transport.Transport

export interface ChannelOpen {
  readonly path: string
  readonly query?: string
  readonly headers: Headers
}

export interface TunnelChannels {
  /** Whether one more client WebSocket fits (checked before the client's upgrade is completed). */
  readonly hasRoom: () => Effect.Effect<void, TooManyChannels>
  /** Carries a client WebSocket to the host's local WebSocket endpoint until either side closes. */
  readonly open: (client: Conn, open: ChannelOpen) => Effect.Effect<void>
  /** A `ws:frame` from the host. */
  readonly onFrame: (message: WsFrame) => Effect.Effect<void>
  /** A `ws:close` from the host. */
  readonly onClose: (message: WsClose) => Effect.Effect<void>
  /** Closes every client with this code (the tunnel is closing). */
  readonly closeAll: (code: number, reason: string) => Effect.Effect<void>
  readonly size: () => number
}

export interface ChannelsContext {
  readonly config: RelaySettings
  readonly hostId: HostId
  readonly conn: Conn
  readonly isClosing: () => boolean
  /** A warning the host or a client can repeat at will: rate-limited per tunnel. */
  readonly logLimited: (event: string, fields: Record<string, unknown>) => Effect.Effect<void>
}

/** A client WebSocket carried by the tunnel; `paused` while the tunnel toward the host is too full to take its frames. */
interface Channel {
  readonly client: Conn
  paused: boolean
}

const wsFrame = (id: string, data: string | Uint8Array): WsFrame =>
  typeof data === "string"
    ? { _tag: "ws:frame", id, data }
    : { _tag: "ws:frame", id, data: Buffer.from(data).toString("base64"), encoding: "base64" }

export const make = (ctx: ChannelsContext): TunnelChannels => {
  const { config, conn } = ctx
  const channels = new Map<string, Channel>()
  // `c` + a number: never the id of one of the tunnel's requests, which are numbers alone.
  let seq = 0
  /** The fibers carrying client WebSockets (the callers of `open`): interrupted at the end. */
  const fibers = new Set<Fiber.RuntimeFiber<unknown, unknown>>()

  const hasRoom = () =>
    channels.size < config.maxChannelsPerTunnel
      ? Effect.void
      : Effect.fail(new TooManyChannels({ hostId: ctx.hostId, limit: config.maxChannelsPerTunnel })).pipe(
        Effect.tap(() => Effect.sync(() => RelayMetrics.limitHit("channels")))
      )

  /** A client's frames wait in its own socket while the tunnel toward the host is full. */
  const pauseForTunnel = (channel: Channel) => {
    if (channel.paused) return
    channel.paused = true
    channel.client.pause()
    RelayMetrics.limitHit("tunnel_buffer")
    conn.onDrain(() => {
      channel.paused = false
      channel.client.resume()
    })
  }

  const closeSlow = (id: string, channel: Channel) => {
    channels.delete(id)
    RelayMetrics.limitHit("ws_buffer")
    conn.unsafeSend(RelayToHostCodec.encode({ _tag: "ws:close", id, code: CloseCodes.TryAgainLater, reason: "client too slow" }))
    return Effect.zipRight(
      channel.client.close(CloseCodes.TryAgainLater, "client too slow"),
      ctx.logLimited("tunnel.channel_too_slow", { channelId: id, bufferedBytes: channel.client.bufferedAmount() })
    )
  }

  const open = (client: Conn, request: ChannelOpen) =>
    Effect.suspend(() => {
      if (ctx.isClosing()) return client.close(CloseCodes.Internal, "tunnel closed")
      if (channels.size >= config.maxChannelsPerTunnel) return client.close(CloseCodes.TryAgainLater, "too many WebSockets")
      const id = `c${++seq}`
      const opened = conn.unsafeSend(RelayToHostCodec.encode({
        _tag: "ws:open",
        id,
        path: request.path,
        ...(request.query ? { query: request.query } : {}),
        headers: request.headers
      }))
      if (!opened) return client.close(CloseCodes.Internal, "tunnel closed")
      const channel: Channel = { client, paused: false }
      channels.set(id, channel)
      client.onMessage((data) => {
        if (channels.get(id) !== channel) return
        conn.unsafeSend(RelayToHostCodec.encode(wsFrame(id, data)))
        if (conn.bufferedAmount() > config.tunnelBufferBytes) pauseForTunnel(channel)
      })
      const untilClosed = Effect.flatMap(client.closed, (info) =>
        Effect.sync(() => {
          if (channels.get(id) !== channel) return
          channels.delete(id)
          conn.unsafeSend(RelayToHostCodec.encode({ _tag: "ws:close", id, code: info.code, reason: info.reason }))
        }))
      return Effect.withFiberRuntime<void>((fiber) => {
        fibers.add(fiber)
        return Effect.ensuring(untilClosed, Effect.sync(() => fibers.delete(fiber)))
      })
    })

  const onFrame = (message: WsFrame): Effect.Effect<void> => {
    const channel = channels.get(message.id)
    if (channel === undefined) return Effect.logDebug("tunnel.unknown_channel").pipe(Effect.annotateLogs({ channelId: message.id }))
    channel.client.unsafeSend(message.encoding === "base64" ? decodeBytes(message.data, "base64") : message.data)
    // A client that does not read cannot hold the relay's memory: its channel closes 1013.
    return channel.client.bufferedAmount() > config.wsBufferBytes ? closeSlow(message.id, channel) : Effect.void
  }

  const onClose = (message: WsClose): Effect.Effect<void> => {
    const channel = channels.get(message.id)
    if (channel === undefined) return Effect.void
    channels.delete(message.id)
    return channel.client.close(message.code ?? CloseCodes.Normal, message.reason)
  }

  const closeAll = (code: number, reason: string) =>
    Effect.suspend(() => {
      const clients = [...channels.values()].map((channel) => channel.client)
      channels.clear()
      for (const fiber of fibers) fiber.unsafeInterruptAsFork(FiberId.none)
      fibers.clear()
      return Effect.forEach(clients, (client) => client.close(code, reason), { discard: true })
    })

  return { hasRoom, open, onFrame, onClose, closeAll, size: () => channels.size }
}
