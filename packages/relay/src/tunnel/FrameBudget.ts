/**
 * A tunnel's budget of inbound frames: a token bucket of `burst` frames refilled at `rate` a
 * second. A frame over it pauses reading the tunnel's socket until the bucket has a tenth of its
 * size back: that is backpressure, down to the host's TCP window. While a host keeps sending over
 * the rate, `overSinceMs` grows: the tunnel closes it past a bound. Plain fields on purpose: it is
 * consulted for every frame, and costs a few numbers per tunnel.
 */
import type { Transport } from "@effect-relay/protocol"

export type Take = "ok" | "paused" | "over"

export interface FrameBudget {
  /** One frame arrived: within budget, just paused for it, or still over while paused. */
  readonly take: () => Take
  /** How long the host has been over its rate without a break (0 when it is not). */
  readonly overSinceMs: () => number
  /** Cancels a pending resume (the tunnel ended). */
  readonly stop: () => void
}

export const makeFrameBudget = (rate: number, burst: number, conn: Transport.Transport, now: () => number = Date.now): FrameBudget => {
  let tokens = burst
  let refilledAt = now()
  let overSince: number | undefined
  let resumeTimer: ReturnType<typeof setTimeout> | undefined

  const refill = (t: number) => {
    tokens = Math.min(burst, tokens + ((t - refilledAt) * rate) / 1000)
    refilledAt = t
  }

  const resume = () => {
    resumeTimer = undefined
    conn.resume()
  }

  return {
    take: () => {
      const t = now()
      refill(t)
      tokens -= 1
      if (tokens >= 0) {
        // Half the bucket back: the host has kept within its rate for a while.
        if (overSince !== undefined && tokens >= burst / 2) overSince = undefined
        return "ok"
      }
      overSince ??= t
      if (resumeTimer !== undefined) return "over"
      conn.pause()
      const waitMs = Math.ceil(((burst / 10 - tokens) * 1000) / rate)
      resumeTimer = setTimeout(resume, waitMs)
      resumeTimer.unref?.()
      return "paused"
    },
    overSinceMs: () => (overSince === undefined ? 0 : now() - overSince),
    stop: () => {
      if (resumeTimer !== undefined) clearTimeout(resumeTimer)
      resumeTimer = undefined
    }
  }
}
