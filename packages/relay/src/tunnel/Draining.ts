import { CloseCodes, CloseReasons, type Transport } from "@effect-relay/protocol"
import { Context, Effect, Layer } from "effect"
import * as RelayMetrics from "../metrics/RelayMetrics.js"

/**
 * Whether this relay is draining. Flipped once, at the start of a drain;
 * `/ready` answers 503 from then on and new tunnel registrations are refused
 * with 4001. Reading it is synchronous so every check is up to date.
 */
export class Draining extends Context.Tag("effect-relay/Draining")<Draining, {
  readonly isDraining: () => boolean
  /** Flips to draining; true when this call did it (false if already draining). */
  readonly begin: Effect.Effect<boolean>
}>() {
  static layer = Layer.sync(Draining, () => {
    let draining = false
    return Draining.of({
      isDraining: () => draining,
      begin: Effect.sync(() => {
        if (draining) return false
        draining = true
        return true
      })
    })
  })
}

/** How a tunnel registration is refused while draining: a log line, then close 4001 "draining". */
export const refuseWhileDraining = (conn: Transport.Transport, hostId: string) =>
  Effect.logInfo("tunnel.refused").pipe(
    Effect.zipRight(RelayMetrics.registration("refused_draining")),
    Effect.annotateLogs({ hostId, code: CloseCodes.Drain, reason: CloseReasons.Draining }),
    Effect.zipRight(conn.close(CloseCodes.Drain, CloseReasons.Draining))
  )
