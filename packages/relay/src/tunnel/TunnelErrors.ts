/** Why a request sent into a tunnel got no answer from the host. */
import { Data } from "effect"

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

/** The host answered with a response frame that is not valid (status, headers, or a head over the limit). */
export class BadResponseFromHost extends Data.TaggedError("BadResponseFromHost")<{ readonly hostId: string; readonly reason: string }> {
  get message() {
    return `the host sent a response that cannot be forwarded (${this.reason})`
  }
}

/** The tunnel already carries its maximum of client WebSockets. */
export class TooManyChannels extends Data.TaggedError("TooManyChannels")<{ readonly hostId: string; readonly limit: number }> {
  get message() {
    return `host ${this.hostId} already carries ${this.limit} WebSockets`
  }
}
