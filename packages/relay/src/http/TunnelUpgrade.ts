/**
 * A host opening its tunnel: `GET /tunnel?hostId=...` with its token. Everything is checked on the
 * HTTP request, before the upgrade: a malformed hostId is answered 400, a bad token 401, a token
 * for another org 403, and nothing of a refused connection is ever read as WebSocket frames.
 * Only then is it upgraded and handed to the tunnel registry. A relay that is draining upgrades
 * an authenticated host only to close it 4001 at once, the code that brings it straight back
 * elsewhere (checked again after the async auth, and by the registry).
 */
import {
  CloseCodes,
  decodeHostId,
  FeaturesHeader,
  InstanceHeader,
  LogLimits,
  parseFeatures,
  parseWindows,
  retryAfterReason,
  SessionHeader,
  TunnelProtocols,
  WindowHeader
} from "@effect-relay/protocol"
import { Context, Effect, Either, Layer } from "effect"
import type * as http from "node:http"
import type { Duplex } from "node:stream"
import { Auth } from "../auth/Auth.js"
import { RelayConfig } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import { Admission } from "../tunnel/Admission.js"
import { Draining, refuseWhileDraining } from "../tunnel/Draining.js"
import { TunnelRegistry } from "../tunnel/TunnelRegistry.js"
import { type ClientError, toHttpError } from "./ErrorResponse.js"
import { bearerToken, takeToken } from "./HostRoute.js"
import { BadHostId } from "./HttpErrors.js"
import { rejectUpgrade, writeRaw } from "./Responses.js"
import { makeUpgrade } from "./WsUpgrade.js"

/** Which agent instance, and which of its sessions, a tunnel is (agents before instances say neither). */
const agentOf = (req: http.IncomingMessage): { readonly instanceId: string | undefined; readonly session: number } => {
  const instance = req.headers[InstanceHeader]
  const session = Number(req.headers[SessionHeader])
  return {
    instanceId: typeof instance === "string" && /^[A-Za-z0-9-]{1,64}$/.test(instance) ? instance : undefined,
    session: Number.isInteger(session) && session >= 0 && session < 64 ? session : 0
  }
}

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
      const admission = yield* Admission
      // A body travels base64 in a JSON frame: room for a maximal body plus the envelope.
      // The protocol: version 2 when the agent offers it and this relay speaks it, else version 1
      // (offered or not: an agent that offers nothing speaks it).
      const upgrade = makeUpgrade(Math.ceil(config.maxBodyBytes * 4 / 3) + 1024 * 1024, (offered) =>
        config.protocolV2 && offered.has(TunnelProtocols.v2) ? TunnelProtocols.v2 : offered.has(TunnelProtocols.v1) ? TunnelProtocols.v1 : false)
      // Strangers can repeat refusals at will: a few lines a second, each saying how many were left out.
      const refusals = LogLimits.gate(10, 1000)
      // Hosts arriving over the registration rate (another relay drained): one line a second is enough.
      const busyRefusals = LogLimits.gate(1, 1000)

      const refuse = (socket: Duplex, rawHostId: string, e: ClientError) =>
        Effect.gen(function*() {
          const error = toHttpError(e)
          yield* RelayMetrics.registration(refusal(e))
          const suppressed = refusals.admit()
          if (suppressed !== undefined) {
            yield* Effect.logWarning("tunnel.refused").pipe(
              Effect.annotateLogs({
                hostId: LogLimits.clip(rawHostId),
                status: error.status,
                reason: e.message,
                ...(suppressed > 0 ? { suppressed } : {})
              })
            )
          }
          yield* rejectUpgrade(socket, error)
        })

      const handle = (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: string) =>
        Effect.gen(function*() {
          const q = url.indexOf("?")
          const query = q === -1 ? "" : url.slice(q + 1)
          const rawHostId = new URLSearchParams(query).get("hostId") ?? ""
          const hostId = decodeHostId(rawHostId)
          if (Either.isLeft(hostId)) return yield* refuse(socket, rawHostId, new BadHostId({ input: LogLimits.clip(rawHostId) }))
          const token = bearerToken(req.headers.authorization, takeToken(query).token)
          const authorized = yield* Effect.either(auth.authorize(token, hostId.right))
          if (Either.isLeft(authorized)) return yield* refuse(socket, rawHostId, authorized.left)
          const { instanceId, session } = agentOf(req)
          // A second tunnel of one agent belongs on another relay: with Fly's proxy in front, it is
          // replayed to another machine before any upgrade; else the registry closes it 4003.
          if (instanceId !== undefined && config.routing === "fly-replay" && registry.holdsOtherSession(hostId.right, instanceId, session)) {
            yield* RelayMetrics.registration("refused_held_here")
            return yield* writeRaw(socket, 200, { "fly-replay": "elsewhere=true" })
          }
          const conn = yield* upgrade(req, socket, head)
          if (draining.isDraining()) return yield* refuseWhileDraining(conn, hostId.right)
          // Over this relay's registration rate (another relay's hosts arriving at once): come back later.
          const wait = admission.admit()
          if (wait !== undefined) {
            yield* RelayMetrics.registration("refused_busy")
            const suppressed = busyRefusals.admit()
            if (suppressed !== undefined) {
              yield* Effect.logInfo("tunnel.refused_busy").pipe(
                Effect.annotateLogs({ hostId: hostId.right, retryAfterMs: wait, ...(suppressed > 0 ? { suppressed } : {}) })
              )
            }
            return yield* conn.close(CloseCodes.TryAgainLater, retryAfterReason(wait))
          }
          yield* registry.register(hostId.right, conn, {
            features: parseFeatures(req.headers[FeaturesHeader]),
            ...(instanceId !== undefined ? { instanceId } : {}),
            session,
            windows: parseWindows(req.headers[WindowHeader])
          })
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
