/**
 * Every WebSocket close code the relay and the host agent use, in one place.
 * 1001 and 4001 must stay distinct: a host resets its backoff on 4001 (drain)
 * and keeps climbing it on 1001 (ping timeout).
 */
export const CloseCodes = {
  /** Normal closure, also used when a newer tunnel for the same host replaces this one. */
  Normal: 1000,
  /** The relay stopped hearing pongs: "going away". Never used for a drain. */
  PingTimeout: 1001,
  /** Authentication or authorization failed, or the request broke a policy (bad hostId). */
  Policy: 1008,
  /** Something failed inside the relay or its directory. */
  Internal: 1011,
  /** A client WebSocket carried by a draining tunnel: the client should reconnect. */
  ServiceRestart: 1012,
  /**
   * Try again later: a channel's reader is too slow; or a relay admitting registrations at its
   * rate refuses one for now (the reason then carries `retryAfterMs=N`, which the host honours,
   * plus jitter, without climbing its backoff).
   */
  TryAgainLater: 1013,
  /** The relay is draining (deploy/restart): reconnect at once, to another relay if possible. */
  Drain: 4001,
  /** The host agent heard nothing from the relay for too long and closed the tunnel itself. */
  HostWatchdog: 4002,
  /**
   * This relay already holds a tunnel of this agent instance: dial again, to land on another relay
   * (behind one load-balanced URL). The agent redials with jitter, without climbing its backoff.
   */
  HeldHere: 4003
} as const

export type CloseCode = (typeof CloseCodes)[keyof typeof CloseCodes]

/** Close reasons sent with the codes above (the reason is for people; programs read the code). */
export const CloseReasons = {
  Unauthorized: "Unauthorized",
  Forbidden: "Forbidden",
  BadHostId: "Bad hostId",
  Replaced: "Replaced by new tunnel",
  PingTimeout: "Ping timeout",
  Draining: "draining",
  Watchdog: "Inbound silence",
  QueueFull: "Frame queue full",
  HeldHere: "held here: try another relay"
} as const

/**
 * Close codes a WebSocket endpoint may not send itself (RFC 6455 7.4.1): they
 * only describe what a peer observed. Forwarding one of them would throw.
 */
export const isSendableCloseCode = (code: number): boolean =>
  (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
  (code >= 3000 && code <= 4999)

/** The close reason of a registration refused for now: `retryAfterMs=N`. */
export const retryAfterReason = (ms: number): string => `try again later; retryAfterMs=${Math.max(0, Math.round(ms))}`

/** The wait a `retryAfterReason` names, if the reason is one. */
export const parseRetryAfter = (reason: string): number | undefined => {
  const match = /retryAfterMs=(\d+)/.exec(reason)
  return match === null ? undefined : Number(match[1])
}
