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
}> {
  get message() {
    // What the client reads: the owner's name and address are internal (logged as peer.unreachable).
    return "the relay holding this host cannot be reached"
  }
}
