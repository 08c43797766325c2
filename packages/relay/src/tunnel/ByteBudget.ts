/**
 * A number of bytes that requests in flight share: the body bytes one tunnel, or the whole relay,
 * may hold in memory at once. Taking waits in arrival order, up to a deadline; bytes already in
 * memory (a response that arrived) either fit now or are refused, they never wait.
 */
import { Effect } from "effect"

export interface ByteBudget {
  readonly limit: number
  /** Bytes free now (negative while charged past the limit). */
  readonly available: () => number
  /** Takes `n` bytes if they are free now, with nobody waiting ahead. */
  readonly tryTake: (n: number) => boolean
  /** Waits up to `timeoutMs` for `n` bytes, behind earlier takers; false when they did not come in time. */
  readonly take: (n: number, timeoutMs: number) => Effect.Effect<boolean>
  /** Takes `n` bytes already in memory if they fit now, ahead of any waiting taker (their bytes are not read yet). */
  readonly tryCharge: (n: number) => boolean
  readonly give: (n: number) => void
}

interface Waiter {
  readonly n: number
  readonly resume: () => void
  granted: boolean
}

export const make = (limit: number): ByteBudget => {
  let available = limit
  const waiting: Array<Waiter> = []
  const wake = () => {
    while (waiting.length > 0 && waiting[0]!.n <= available) {
      const next = waiting.shift()!
      available -= next.n
      next.granted = true
      next.resume()
    }
  }
  const tryTake = (n: number) => {
    if (waiting.length > 0 || n > available) return false
    available -= n
    return true
  }
  const take = (n: number, timeoutMs: number): Effect.Effect<boolean> =>
    Effect.suspend(() => {
      if (tryTake(n)) return Effect.succeed(true)
      // More than the whole budget can never be had: do not queue behind it.
      if (n > limit || timeoutMs <= 0) return Effect.succeed(false)
      const wait = Effect.async<boolean>((resume) => {
        const waiter: Waiter = { n, resume: () => resume(Effect.succeed(true)), granted: false }
        waiting.push(waiter)
        return Effect.sync(() => {
          // Given the bytes just as the wait was given up: they go back.
          if (waiter.granted) return give(n)
          const at = waiting.indexOf(waiter)
          if (at !== -1) {
            waiting.splice(at, 1)
            // The head may have been the one in the way of those behind it.
            if (at === 0) wake()
          }
        })
      })
      return Effect.timeoutTo(wait, { duration: timeoutMs, onTimeout: () => false, onSuccess: (ok) => ok })
    })
  const give = (n: number) => {
    available += n
    wake()
  }
  return {
    limit,
    available: () => available,
    tryTake,
    take,
    tryCharge: (n) => {
      if (n > available) return false
      available -= n
      return true
    },
    give
  }
}
