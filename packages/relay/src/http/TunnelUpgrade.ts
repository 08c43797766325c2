/**
 * A host opening its tunnel: `GET /tunnel?hostId=...` upgraded to a WebSocket, authenticated,
 * and handed to the tunnel registry. Refusals close the WebSocket with a code the host agent
 * acts on (1008 auth, 4001 draining).
 */
import { decodeHostId } from "@effect-relay/protocol"
import { Context, Effect, Either, Layer } from "effect"
import type * as http from "node:http"
import type { Duplex } from "node:stream"
import { Auth } from "../auth/Auth.js"
import { RelayConfig } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { Draining, refuseWhileDraining } from "../tunnel/Draining.js"
import { TunnelRegistry } from "../tunnel/TunnelRegistry.js"
import { type ClientError, toTunnelClose } from "./ErrorResponse.js"
import { bearerToken, takeToken } from "./HostRoute.js"
import { BadHostId } from "./HttpErrors.js"
import { makeUpgrade } from "./WsUpgrade.js"

const refusal = (e: ClientError): RelayMetrics.RegistrationResult =>
  e._tag === "Forbidden" ? "refused_forbidden" : e._tag === "BadHostId" ? "refused_bad_host_id" : "refused_unauthorized"

export class TunnelUpgrade extends Context.Tag("effect-relay/TunnelUpgrade")<TunnelUpgrade, {
  readonly handle: (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: string) => Effect.Effect<void>
}>() {
  static layer = Layer.effect(
    TunnelUpgrade,
    Effect.gen(function*() {
      const config = yield* RelayConfig
      const auth = yield* Auth
      const draining = yield* Draining
      const registry = yield* TunnelRegistry
      // A body travels base64 in a JSON frame: room for a maximal body plus the envelope.
      const upgrade = makeUpgrade(Math.ceil(config.maxBodyBytes * 4 / 3) + 1024 * 1024)

      const handle = (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: string) =>
        Effect.gen(function*() {
          const q = url.indexOf("?")
          const query = q === -1 ? "" : url.slice(q + 1)
          const rawHostId = new URLSearchParams(query).get("hostId") ?? ""
          const token = bearerToken(req.headers.authorization, takeToken(query).token)
          const conn = yield* upgrade(req, socket, head)
          const refuse = (e: ClientError) => {
            const [code, reason] = toTunnelClose(e)
            return Effect.logWarning("tunnel.refused").pipe(
              Effect.zipRight(RelayMetrics.registration(refusal(e))),
              Effect.annotateLogs({ hostId: rawHostId, code, reason: e.message }),
              Effect.zipRight(conn.close(code, reason))
            )
          }
          // Checked before auth (no work for a relay that is leaving) and again by the registry after it.
          if (draining.isDraining()) return yield* refuseWhileDraining(conn, rawHostId)
          const hostId = decodeHostId(rawHostId)
          if (Either.isLeft(hostId)) return yield* refuse(new BadHostId({ input: rawHostId }))
          yield* auth.authorize(token, hostId.right).pipe(
            Effect.matchEffect({ onFailure: refuse, onSuccess: () => registry.register(hostId.right, conn) })
          )
        }).pipe(
          // A registration is seen through to its answer, also when the relay stops meanwhile: the
          // registry then refuses it with 4001 (the host comes back at once), where an interrupted
          // one would leave the host with a WebSocket nobody answers. It is bounded by the auth's
          // and the directory's own timeouts.
          Effect.uninterruptible
        )

      return TunnelUpgrade.of({ handle })
    })
  )
}
