/**
 * The one place where an expected failure becomes what a client sees: an HTTP status with
 * `{"error": code, "message": ...}`, or a tunnel close code.
 */
import { CloseCodes, CloseReasons } from "@effect-relay/protocol"
import type { Forbidden, Unauthorized } from "../auth/AuthErrors.js"
import type { DirectoryUnavailable } from "../directory/Directory.js"
import type { HostOffline, PeerForbidden, PeerUnreachable } from "../routing/RoutingErrors.js"
import type { BadResponseFromHost, RequestTimeout, TooManyChannels, TooManyPendingRequests, TunnelClosed } from "../tunnel/TunnelErrors.js"
import type {
  BadHostId,
  BadHostname,
  BadRequest,
  BodyBudgetExhausted,
  BodyReadTimeout,
  CrossSiteSession,
  PayloadTooLarge,
  RouteNotFound
} from "./HttpErrors.js"

export type ClientError =
  | Unauthorized
  | Forbidden
  | BadHostId
  | BadHostname
  | CrossSiteSession
  | HostOffline
  | TunnelClosed
  | RequestTimeout
  | TooManyPendingRequests
  | PayloadTooLarge
  | BadRequest
  | DirectoryUnavailable
  | RouteNotFound
  | PeerForbidden
  | PeerUnreachable
  | BadResponseFromHost
  | TooManyChannels
  | BodyReadTimeout
  | BodyBudgetExhausted

export interface HttpError {
  readonly status: number
  readonly error: string
  readonly message: string
}

const codes: { readonly [K in ClientError["_tag"]]: readonly [status: number, error: string] } = {
  BadRequest: [400, "bad_request"],
  BadHostId: [400, "bad_host_id"],
  BadHostname: [400, "bad_hostname"],
  Unauthorized: [401, "unauthorized"],
  Forbidden: [403, "forbidden"],
  CrossSiteSession: [403, "cross_site"],
  RouteNotFound: [404, "not_found"],
  BodyReadTimeout: [408, "body_read_timeout"],
  PayloadTooLarge: [413, "payload_too_large"],
  PeerForbidden: [403, "forbidden"],
  TunnelClosed: [502, "tunnel_closed"],
  PeerUnreachable: [502, "peer_unreachable"],
  BadResponseFromHost: [502, "bad_response"],
  HostOffline: [503, "host_offline"],
  TooManyPendingRequests: [503, "too_many_pending"],
  DirectoryUnavailable: [503, "directory_unavailable"],
  TooManyChannels: [503, "too_many_channels"],
  BodyBudgetExhausted: [503, "busy"],
  RequestTimeout: [504, "request_timeout"]
}

export const toHttpError = (e: ClientError): HttpError => {
  const [status, error] = codes[e._tag]
  return { status, error, message: e.message }
}

export const httpErrorBody = (e: HttpError): string => JSON.stringify({ error: e.error, message: e.message })

/** The org a person needs a token for, when the failure knows it (for the HTML error page). */
export const orgNeeded = (e: ClientError): string | undefined =>
  e._tag === "Unauthorized" || e._tag === "Forbidden" ? e.org : undefined

/** Why a tunnel registration is refused, as a close code and reason. */
export const toTunnelClose = (e: ClientError): readonly [code: number, reason: string] => {
  switch (e._tag) {
    case "Unauthorized":
      return [CloseCodes.Policy, CloseReasons.Unauthorized]
    case "Forbidden":
      return [CloseCodes.Policy, CloseReasons.Forbidden]
    case "BadHostId":
      return [CloseCodes.Policy, CloseReasons.BadHostId]
    default:
      return [CloseCodes.Internal, e.message]
  }
}
