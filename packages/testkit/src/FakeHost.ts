import { HostToRelayCodec, HttpResponse, Pong, RelayToHostCodec, type RelayToHost } from "@effect-relay/protocol"
import { Either } from "effect"
import { Effect } from "effect"
import { openSocket, type RecordingSocket } from "./WsClient.js"

/**
 * A hand-driven host: a raw WebSocket on `/tunnel` that answers pings and,
 * when `respond` is set, answers `http` frames. Lets relay tests send exactly
 * the frames they want, including bad ones.
 */
export interface FakeHost extends RecordingSocket {
  /** Frames from the relay, decoded (undecodable ones are skipped). */
  readonly messages: () => Array<RelayToHost>
  readonly sendRaw: (data: string | Buffer) => void
}

export const fakeHost = (
  relayWs: string,
  hostId: string,
  token: string,
  respond?: (req: Extract<RelayToHost, { _tag: "http" }>) => HttpResponse | undefined,
  /** More headers on the upgrade (an agent's instance and session, its features). */
  headers: Record<string, string> = {}
) =>
  Effect.map(
    openSocket(`${relayWs}/tunnel?hostId=${encodeURIComponent(hostId)}`, { authorization: `Bearer ${token}`, ...headers }),
    (socket): FakeHost => {
      socket.ws.on("message", (data, isBinary) => {
        if (isBinary) return
        const decoded = RelayToHostCodec.decode(data.toString())
        if (Either.isLeft(decoded)) return
        const m = decoded.right
        if (m._tag === "ping") socket.ws.send(HostToRelayCodec.encode(Pong.make({ ts: m.ts })))
        if (m._tag === "http" && respond) {
          const answer = respond(m)
          if (answer) socket.ws.send(HostToRelayCodec.encode(answer))
        }
      })
      return {
        ...socket,
        messages: () =>
          socket.frames.flatMap((f) => {
            if (f.binary) return []
            const d = RelayToHostCodec.decode(f.data as string)
            return Either.isRight(d) ? [d.right] : []
          }),
        sendRaw: (data) => socket.ws.send(data)
      }
    }
  )

export const okResponse = (id: string, body = "ok") => HttpResponse.make({ id, status: 200, headers: { "content-type": "text/plain" }, body })
