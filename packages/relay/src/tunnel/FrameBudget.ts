/**
 * A tunnel's budget of inbound frames: a token bucket of `burst` frames refilled at `rate` a
 * second. A frame over it pauses reading the tunnel's socket until the bucket has a tenth of its
 * size back: that is backpressure, down to the host's TCP window. While a host keeps sending over
 * the rate, `overSinceMs` grows: the tunnel closes it past a bound. Plain fields on purpose: it is
 * consulted for every frame, and costs a few numbers per tunnel.
 *
 * Frames the relay asked for do not come out of the bucket: every frame the relay sends (a
 * request's head, credit, a ping) earns the host `earnedPerSent` frames of answer (a version 2
 * response is a head, its body pieces and an end), spent before the bucket. So a busy tunnel is
 * never slowed by its own answers, while frames nobody asked for (pongs without pings, unknown
 * messages, garbage, tiny pieces beyond what credit was sent for) still meet the rate. What is
 * earned and not spent is capped at `earnedCap`.
 */
import type { Transport } from "@effect-relay/protocol"

export type Take = "ok" | "paused" | "over"

export interface FrameBudget {
  /** One frame arrived: within budget, just paused for it, or still over while paused. */
  readonly take: () => Take
  /** How long the host has been over its rate without a break (0 when it is not). */
  readonly overSinceMs: () => number
  /** The relay sent the host a frame: the host may answer it without touching the bucket. */
  readonly earn: () => void
  /** Cancels a pending resume (the tunnel ended). */
  readonly stop: () => void
}

/** Frames of answer each frame the relay sends earns the host (a head, a body piece, an end, and one spare). */
export const earnedPerSent = 4

export const makeFrameBudget = (
  rate: number,
  burst: number,
  conn: Transport.Transport,
  now: () => number = Date.now,
  earnedCap: number = 4 * burst
): FrameBudget => {
  let tokens = burst
  let earned = 0
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
      if (earned >= 1) {
        // An answer the relay asked for: never over, and the bucket refills meanwhile.
        earned -= 1
        if (overSince !== undefined && tokens >= burst / 2) overSince = undefined
        return "ok"
      }
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
    earn: () => {
      earned = Math.min(earnedCap, earned + earnedPerSent)
    },
    overSinceMs: () => (overSince === undefined ? 0 : now() - overSince),
    stop: () => {
      if (resumeTimer !== undefined) clearTimeout(resumeTimer)
      resumeTimer = undefined
    }
  }
}
