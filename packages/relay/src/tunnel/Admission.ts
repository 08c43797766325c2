/**
 * How many tunnel registrations this relay takes per second. When a relay drains, its hosts
 * re-dial the others; a surviving relay takes them through a token bucket, and one over the rate
 * is told when to come back (`retryAfterMs`, closed 1013): the waits given out are spaced at the
 * rate, so the refused hosts come back one slot each instead of all at once.
 */
import { Context, Effect, Layer } from "effect"
import { RelayConfig } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"

/** The longest wait given out. */
const maxWaitMs = 30_000

export class Admission extends Context.Tag("effect-relay/Admission")<Admission, {
  /** Undefined when a registration may go ahead now; else how long its host should wait. */
  readonly admit: () => number | undefined
}>() {
  static layer = Layer.effect(
    Admission,
    Effect.map(RelayConfig, (config) => Admission.of(make(config.registrationsPerSecond, config.registrationBurst)))
  )
}

export const make = (rate: number, burst: number, now: () => number = Date.now) => {
  let tokens = burst
  let refilledAt = now()
  /** The next free slot handed to a refused registration (ms since epoch). */
  let nextSlot = 0
  const slotMs = 1000 / rate
  return {
    admit: (): number | undefined => {
      const t = now()
      tokens = Math.min(burst, tokens + ((t - refilledAt) * rate) / 1000)
      refilledAt = t
      if (tokens >= 1) {
        tokens -= 1
        return undefined
      }
      RelayMetrics.limitHit("registration_rate")
      nextSlot = Math.max(nextSlot, t + (1 - tokens) * slotMs) + slotMs
      return Math.min(maxWaitMs, Math.ceil(nextSlot - t))
    }
  }
}
