/** Why a request cannot reach the relay that holds its host. */
import { Data } from "effect"

/** No tunnel for this host, here or (later) anywhere in the directory. */
export class HostOffline extends Data.TaggedError("HostOffline")<{ readonly hostId: string }> {
  get message() {
    return `host ${this.hostId} is not connected`
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
  /** The connection to the peer was never made (refused, unreachable): nothing of the request reached it. */
  readonly notSent?: boolean
  /** Part of a streamed body was already sent (and read from the client): the request cannot go again. */
  readonly bodyStarted?: boolean
}> {
  get message() {
    // What the client reads: the owner's name and address are internal (logged as peer.unreachable).
    return "the relay holding this host cannot be reached"
  }
}

/** Connecting failed outright: nothing was sent. */
const connectFailures = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ECONNABORTED"])
export const isConnectFailure = (cause: unknown): boolean => connectFailures.has((cause as NodeJS.ErrnoException | undefined)?.code ?? "")

/** Methods a client may have sent twice without harm (RFC 9110 9.2.2). */
const idempotent = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"])

/**
 * Whether a request that failed so may go to another relay, now or once its host registers
 * again: nothing of it reached a host (no relay holds the host; the owner could not be
 * connected to), or sending it twice does no harm.
 */
export const mayRetry = (e: { readonly _tag: string; readonly notSent?: boolean; readonly bodyStarted?: boolean }, method: string | undefined): boolean =>
  e._tag === "HostOffline" ||
  (e._tag === "PeerUnreachable" && e.bodyStarted !== true && (e.notSent === true || idempotent.has(method ?? "GET")))
