/**
 * How each end of a connect attempt or tunnel is logged: one line, at a level that says whether
 * someone should look (credentials refused: error with a hint; a drain, a held-here: info).
 */
import { CloseCodes } from "@effect-relay/protocol"
import { Effect } from "effect"
import type { SessionEnd } from "./Errors.js"

export const logEnd = (end: SessionEnd): Effect.Effect<void> => {
  switch (end._tag) {
    case "ConnectError":
      return end.status === 401 || end.status === 403
        ? Effect.logError("tunnel.connect_refused").pipe(Effect.annotateLogs({
          status: end.status,
          hint: "the relay refused the credentials: check RELAY_TOKEN and HOST_ID"
        }))
        : Effect.logWarning("tunnel.connect_failed").pipe(Effect.annotateLogs({
          ...(end.status !== undefined ? { status: end.status } : {}),
          error: end.message
        }))
    case "SessionClosed":
      return end.code === CloseCodes.Policy
        ? Effect.logError("tunnel.closed").pipe(Effect.annotateLogs({
          code: end.code,
          reason: end.reason,
          hint: "authentication or authorization failed: check RELAY_TOKEN and HOST_ID"
        }))
        : (end.code === CloseCodes.Normal ? Effect.logInfo : Effect.logWarning)("tunnel.closed").pipe(
          Effect.annotateLogs({ code: end.code, reason: end.reason })
        )
    case "WatchdogTimeout":
      return Effect.logWarning("tunnel.watchdog").pipe(
        Effect.annotateLogs({ code: CloseCodes.HostWatchdog, silentMs: end.silentMs })
      )
    case "DrainSignal":
      return Effect.logInfo("tunnel.drain").pipe(
        Effect.annotateLogs({
          source: end.source,
          ...(end.source === "close" ? { code: CloseCodes.Drain } : {}),
          ...(end.reason !== undefined ? { reason: end.reason } : {}),
          ...("reconnectWithinMs" in end && end.reconnectWithinMs !== undefined ? { reconnectWithinMs: end.reconnectWithinMs } : {})
        })
      )
    case "HeldHere":
      return Effect.logInfo("tunnel.held_here").pipe(
        Effect.annotateLogs({
          source: end.source,
          ...(end.source === "relay" ? { code: CloseCodes.HeldHere } : {}),
          ...(end.relayId !== undefined ? { relayId: end.relayId } : {})
        })
      )
    case "RelayBusy":
      return Effect.logInfo("tunnel.relay_busy").pipe(
        Effect.annotateLogs({
          code: CloseCodes.TryAgainLater,
          reason: end.reason,
          ...(end.retryAfterMs !== undefined ? { retryAfterMs: end.retryAfterMs } : {})
        })
      )
  }
}
