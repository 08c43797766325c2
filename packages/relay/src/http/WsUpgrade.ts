/**
 * Completing a WebSocket upgrade with `ws`, as a `Transport`. Each kind of connection has its
 * own upgrader, with its own largest frame.
 */
import { Transport } from "@effect-relay/protocol"
import { Effect } from "effect"
import type * as http from "node:http"
import type { Duplex } from "node:stream"
import { WebSocketServer, type WebSocket } from "ws"

export type Upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => Effect.Effect<Transport.Transport>

/** Picks the subprotocol to agree to among those offered; false for none. */
export type ChooseProtocol = (offered: ReadonlySet<string>) => string | false

/** The first offered (a client WebSocket: the host's target is offered that one). */
const firstOffered: ChooseProtocol = (offered) => offered.values().next().value ?? false

/** An upgrader accepting frames up to `maxPayload` bytes. It ends interrupted if the socket is gone first. */
export const makeUpgrade = (maxPayload: number, chooseProtocol: ChooseProtocol = firstOffered): Upgrade => {
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload,
    handleProtocols: (protocols) => chooseProtocol(protocols)
  })
  return (req, socket, head) =>
    Effect.async<Transport.Transport>((resume) => {
      // ws never calls back when it refuses the handshake (it answers 400 and destroys the
      // socket), nor when the socket is already gone: end with the socket, then.
      const onClose = () => resume(Effect.interrupt)
      socket.once("close", onClose)
      if (socket.destroyed) return resume(Effect.interrupt)
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        socket.off("close", onClose)
        // The transport's listeners go on now, in ws's callback: frames that came with the upgrade
        // are parsed on the next tick, and a bad one would otherwise raise an unheard `error`.
        resume(Effect.succeed(Transport.unsafeFromWebSocket(ws)))
      })
      return Effect.sync(() => socket.off("close", onClose))
    })
}
