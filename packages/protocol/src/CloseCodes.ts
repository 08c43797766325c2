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
  /** A channel's frame queue overflowed: the peer is too slow. */
  TryAgainLater: 1013,
  /** The relay is draining (deploy/restart): reconnect at once, to another relay if possible. */
  Drain: 4001,
  /** The host agent heard nothing from the relay for too long and closed the tunnel itself. */
  HostWatchdog: 4002
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
  QueueFull: "Frame queue full"
} as const

/**
 * Close codes a WebSocket endpoint may not send itself (RFC 6455 7.4.1): they
 * only describe what a peer observed. Forwarding one of them would throw.
 */
export const isSendableCloseCode = (code: number): boolean =>
  (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
  (code >= 3000 && code <= 4999)
