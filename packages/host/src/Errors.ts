import { CloseCodes, DrainSignal, Transport } from "@effect-relay/protocol"
import { Data, Schema } from "effect"

/**
 * How a tunnel session ends. Every session ends with one of these. A
 * `DrainSignal` resets the reconnect schedule; `HeldHere` (a few in a row) and
 * `RelayBusy` (with a `retryAfterMs`) redial after their own wait without
 * touching it; every other one climbs it (see `Pacing.ts`).
 */

/** The relay could not be reached, or refused the WebSocket upgrade (then `status` is set). */
export const ConnectError = Transport.ConnectError
export type ConnectError = Transport.ConnectError

export { DrainSignal }

/**
 * A `DrainSignal` as a session sees it: with the window the relay's drain frame asked its hosts
 * to come back within (`reconnectWithinMs`), when it gave one. Still a `DrainSignal` (same tag,
 * `instanceof` holds).
 */
export class Drained extends DrainSignal.extend<Drained>("Drained")({
  reconnectWithinMs: Schema.optional(Schema.Number)
}) {}

/**
 * This tunnel landed on a relay that already holds another tunnel of this agent: the relay closed
 * it with 4003 (`source: "relay"`), or its hello named a relay another session is on and the agent
 * closed it itself (`source: "agent"`). Redial, to land elsewhere.
 */
export class HeldHere extends Data.TaggedError("HeldHere")<{
  readonly source: "relay" | "agent"
  readonly relayId?: string
}> {
  get message() {
    return `this relay${this.relayId ? ` (${this.relayId})` : ""} already holds a tunnel of this agent`
  }
}

/**
 * The relay closed the tunnel with 1013 (try again later): it admits registrations at a rate and
 * this one was over it. `retryAfterMs` is the wait its close reason named, if it named one.
 */
export class RelayBusy extends Data.TaggedError("RelayBusy")<{
  readonly retryAfterMs: number | undefined
  readonly reason: string
}> {
  get message() {
    return `the relay is busy${this.retryAfterMs !== undefined ? `: retry after ${this.retryAfterMs} ms` : ""}`
  }
}

/** The relay closed the tunnel (or the connection dropped) with a code other than 4001, 4003 and 1013. */
export class SessionClosed extends Data.TaggedError("SessionClosed")<{
  readonly code: number
  readonly reason: string
}> {
  get message() {
    return `tunnel closed with ${this.code}${this.reason ? ` (${this.reason})` : ""}`
  }
}

/** Nothing at all came from the relay for `silentMs`: the host closed the tunnel with 4002. */
export class WatchdogTimeout extends Data.TaggedError("WatchdogTimeout")<{
  readonly silentMs: number
}> {
  get message() {
    return `no frame from the relay for ${this.silentMs} ms`
  }
}

export type SessionEnd = ConnectError | SessionClosed | WatchdogTimeout | DrainSignal | HeldHere | RelayBusy

/** Every value `reasonOf` can return. */
export const reconnectReasons = [
  "connect_failed",
  "auth",
  "closed_normal",
  "ping_timeout",
  "connection_lost",
  "relay_error",
  "closed_other",
  "watchdog",
  "drain",
  "held_here",
  "relay_busy"
] as const
export type ReconnectReason = typeof reconnectReasons[number]

/**
 * A short, bounded label for why a session ended: the `reason` of the
 * reconnect counter and of the `tunnel.reconnect_in` log line.
 */
export const reasonOf = (end: SessionEnd): ReconnectReason => {
  switch (end._tag) {
    case "ConnectError":
      return end.status === 401 || end.status === 403 ? "auth" : "connect_failed"
    case "WatchdogTimeout":
      return "watchdog"
    case "DrainSignal":
      return "drain"
    case "HeldHere":
      return "held_here"
    case "RelayBusy":
      return "relay_busy"
    case "SessionClosed":
      switch (end.code) {
        case CloseCodes.Normal:
          return "closed_normal"
        case CloseCodes.PingTimeout:
          return "ping_timeout"
        case CloseCodes.Policy:
          return "auth"
        case CloseCodes.Internal:
          return "relay_error"
        case 1005:
        case 1006:
          return "connection_lost"
        default:
          return "closed_other"
      }
  }
}

// What can go wrong while forwarding one HTTP request to the local target.
// Each becomes a response to the relay (see `targetErrorResponse`), never a crash.

/** The target could not be reached (connection refused, reset before the response, DNS...). */
export class TargetUnreachable extends Data.TaggedError("TargetUnreachable")<{
  readonly detail: string
  /** Failed on a reused keep-alive socket the target had just closed: the request never reached it. */
  readonly staleSocket?: boolean
}> {
  get message() {
    return `target unreachable: ${this.detail}`
  }
}

/** The target did not finish its response within the request timeout. */
export class TargetTimeout extends Data.TaggedError("TargetTimeout")<{
  readonly timeoutMs: number
}> {
  get message() {
    return `target did not answer within ${this.timeoutMs} ms`
  }
}

/** The target's response body is larger than `maxBodyBytes`. */
export class ResponseTooLarge extends Data.TaggedError("ResponseTooLarge")<{
  readonly maxBodyBytes: number
}> {
  get message() {
    return `target response body exceeds ${this.maxBodyBytes} bytes`
  }
}

/** The target answered something that cannot be forwarded (a failure mid-body, a bad status line). */
export class TargetResponseFailed extends Data.TaggedError("TargetResponseFailed")<{
  readonly detail: string
}> {
  get message() {
    return `target response failed: ${this.detail}`
  }
}

/** The request from the relay cannot be sent as given (bad method or header for node:http). */
export class InvalidRequest extends Data.TaggedError("InvalidRequest")<{
  readonly detail: string
}> {
  get message() {
    return `request cannot be forwarded: ${this.detail}`
  }
}

export type TargetError = TargetUnreachable | TargetTimeout | ResponseTooLarge | TargetResponseFailed | InvalidRequest

/**
 * The one place target errors become HTTP statuses, `error` codes and the message the client
 * reads. The message is generic on purpose: an error's own `message` names the target's address
 * and the system error ("connect ECONNREFUSED 127.0.0.1:3000"), which stay in the agent's log.
 */
export const targetErrorStatus = (error: TargetError): { readonly status: number; readonly code: string; readonly message: string } => {
  switch (error._tag) {
    case "TargetUnreachable":
      return { status: 502, code: "target_unreachable", message: "the host's service could not be reached" }
    case "TargetTimeout":
      return { status: 504, code: "target_timeout", message: "the host's service did not answer in time" }
    case "ResponseTooLarge":
      return { status: 502, code: "response_too_large", message: "the host's service answered with a body larger than the limit" }
    case "TargetResponseFailed":
      return { status: 502, code: "target_response_failed", message: "the host's service sent a response that cannot be forwarded" }
    case "InvalidRequest":
      return { status: 400, code: "invalid_request", message: "the request cannot be sent to the host's service" }
  }
}
