import { Data } from "effect"

/** No token, a token that does not verify, or an expired one. */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{ readonly reason: string }> {
  get message() {
    return this.reason
  }
}

/** A valid token whose orgs do not include the host's org. */
export class Forbidden extends Data.TaggedError("Forbidden")<{ readonly org: string }> {
  get message() {
    return `token does not grant access to org ${this.org}`
  }
}

/** The hostId in the path or query does not match `{orgId}:{name}`. */
export class BadHostId extends Data.TaggedError("BadHostId")<{ readonly input: string }> {
  get message() {
    return "hostId must be {orgId}:{name}, each part 1-64 of [A-Za-z0-9._-]"
  }
}

/** No tunnel for this host, here or (later) anywhere in the directory. */
export class HostOffline extends Data.TaggedError("HostOffline")<{ readonly hostId: string }> {
  get message() {
    return `host ${this.hostId} is not connected`
  }
}

/** The tunnel closed while the request was waiting for its response. */
export class TunnelClosed extends Data.TaggedError("TunnelClosed")<{ readonly hostId: string }> {
  get message() {
    return `the tunnel to ${this.hostId} closed before the host answered`
  }
}

/** The host did not answer within the request timeout. */
export class RequestTimeout extends Data.TaggedError("RequestTimeout")<{ readonly hostId: string; readonly ms: number }> {
  get message() {
    return `host ${this.hostId} did not answer within ${this.ms} ms`
  }
}

/** The tunnel already carries its maximum of pending requests. */
export class TooManyPendingRequests extends Data.TaggedError("TooManyPendingRequests")<{
  readonly hostId: string
  readonly limit: number
}> {
  get message() {
    return `host ${this.hostId} already has ${this.limit} requests in flight`
  }
}

/** The request body is larger than the relay accepts. */
export class PayloadTooLarge extends Data.TaggedError("PayloadTooLarge")<{ readonly limit: number }> {
  get message() {
    return `request body is larger than ${this.limit} bytes`
  }
}

/** The body could not be read from the client (it disconnected or sent garbage). */
export class BadRequest extends Data.TaggedError("BadRequest")<{ readonly reason: string }> {
  get message() {
    return this.reason
  }
}

/** The directory (in memory or shared) could not be read or written. */
export class DirectoryUnavailable extends Data.TaggedError("DirectoryUnavailable")<{
  readonly op: string
  readonly cause?: unknown
}> {
  get message() {
    return `directory unavailable (${this.op})`
  }
}

/** No route for this path. */
export class RouteNotFound extends Data.TaggedError("RouteNotFound")<{ readonly path: string }> {
  get message() {
    return `no route for ${this.path}`
  }
}

/** A request marked as relay-to-relay without the right peer secret. */
export class PeerForbidden extends Data.TaggedError("PeerForbidden")<{}> {
  get message() {
    return "relay-to-relay request without a valid peer secret"
  }
}

/** The relay that owns the host could not be reached to proxy to. */
export class PeerUnreachable extends Data.TaggedError("PeerUnreachable")<{
  readonly owner: string
  readonly cause?: unknown
  /** The request failed on a reused keep-alive socket the peer had closed: safe to send again. */
  readonly staleSocket?: boolean
}> {
  get message() {
    return `the relay holding this host (${this.owner}) cannot be reached`
  }
}

export type ClientError =
  | Unauthorized
  | Forbidden
  | BadHostId
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
