/**
 * A tunnel's budget of inbound frames: a token bucket of `burst` frames refilled at `rate` a
 * second. A frame over it pauses reading the tunnel's socket until the bucket has a tenth of its
 * size back: that is backpressure, down to the host's TCP window. While a host keeps sending over
 * the rate, `overSinceMs` grows: the tunnel closes it past a bound. Plain fields on purpose: it is
 * consulted for every frame, and costs a few numbers per tunnel.
 *
 * Frames the relay asked for are `earn`ed back on top of the rate (version 2: the answers a
 * request head, a Data frame or a Window frame calls for), so a host's legitimate answers never
 * use up the budget however busy its tunnel, while frames nobody asked for still meet the rate.
 * Measured before: at the rate alone (5,000 a second) a version 2 tunnel answering small GETs
 * (3 frames each) was capped at ~1,650 requests/s, paused 200 ms at a time (p99 203 ms), and
 * closed 1008 after 10 s of that, which a flood of frames nobody asked for needs, not a busy host.
 */
import type { Transport } from "@effect-relay/protocol"

export type Take = "ok" | "paused" | "over"

export interface FrameBudget {
  /** One frame arrived: within budget, just paused for it, or still over while paused. */
  readonly take: () => Take
  /** How long the host has been over its rate without a break (0 when it is not). */
  readonly overSinceMs: () => number
  /** The relay sent something the host may answer with `frames` frames: they are added to the bucket (up to its size). */
  readonly earn: (frames: number) => void
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
    earn: (frames) => {
      tokens = Math.min(burst, tokens + frames)
    },
    stop: () => {
      if (resumeTimer !== undefined) clearTimeout(resumeTimer)
      resumeTimer = undefined
    }
  }
}
