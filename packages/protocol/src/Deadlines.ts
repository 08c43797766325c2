import { Effect, type Fiber, Runtime, Scope } from "effect"

/**
 * Many timeouts of one fixed length (every request on a tunnel, every call to
 * a target), kept by one fiber instead of one timer race per call. Because
 * every entry has the same length, entries expire in the order they were
 * added: a Map (which iterates in insertion order) is the whole queue, and
 * adding or cancelling one is O(1). The fiber sleeps on the Effect `Clock`,
 * so `TestClock` drives it in tests; it runs only while entries are waiting.
 */
export interface Deadlines {
  /**
   * Calls `onExpire` once `ms` have passed, unless the returned function is
   * called first. Safe to call from callbacks (no Effect needed).
   */
  readonly add: (onExpire: () => void) => () => void
  /** Entries waiting. */
  readonly size: () => number
}

interface Entry {
  readonly at: number
  readonly onExpire: () => void
}

/** Deadlines of `ms` each, for the life of the scope (closing it drops every entry without calling it). */
export const make = (ms: number): Effect.Effect<Deadlines, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const entries = new Map<number, Entry>()
    let seq = 0
    let sweeper: Fiber.RuntimeFiber<void> | undefined
    let sweeping = false
    let closed = false

    const sweep: Effect.Effect<void> = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      for (const [id, entry] of entries) {
        if (entry.at > now) return Effect.zipRight(Effect.sleep(entry.at - now), sweep)
        entries.delete(id)
        try {
          entry.onExpire()
        } catch {
          // An expiry callback that throws must not stop the others.
        }
      }
      sweeping = false
      sweeper = undefined
      return Effect.void
    })

    // Scope.addFinalizer, not Effect.addFinalizer: nothing here needs the fiber refs of the
    // moment it was added restored, and restoring them costs more than this finalizer.
    yield* Scope.addFinalizer(yield* Effect.scope, Effect.suspend(() => {
        closed = true
        sweeping = false
        entries.clear()
        const running = sweeper
        sweeper = undefined
        return running === undefined ? Effect.void : running.interruptAsFork(running.id())
      }))

    const add = (onExpire: () => void) => {
      if (closed) return () => {}
      const id = ++seq
      entries.set(id, { at: clock.unsafeCurrentTimeMillis() + ms, onExpire })
      if (!sweeping) {
        sweeping = true
        // The fiber may finish before runFork returns (an entry already due): keep it only if still running.
        const fiber = runFork(sweep)
        if (sweeping) sweeper = fiber
      }
      return () => {
        entries.delete(id)
      }
    }

    return { add, size: () => entries.size }
  })
