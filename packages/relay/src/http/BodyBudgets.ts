/**
 * How many body bytes the relay holds in memory at once: a request body is read only once it has
 * room in its tunnel's budget and in the whole relay's (waiting a little for it), and a response
 * body must find room in both when it arrives (else its client gets 503 busy: it is dropped, not
 * kept) and holds it while it is written to its client. The bytes go back when the client's
 * exchange ends. One tenant's uploads and downloads cannot take more than its tunnel's share, and
 * all of them together cannot grow the relay past its own.
 */
import { Context, Effect, Layer } from "effect"
import { RelayConfig } from "../config/RelayConfig.js"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import * as ByteBudget from "../tunnel/ByteBudget.js"
import { BodyBudgetExhausted } from "./HttpErrors.js"

/** The bytes one client exchange holds: taken from every budget it counts against, given back once. */
export interface Reservation {
  /** Waits (up to BODY_BUDGET_WAIT_MS) for `n` bytes in every budget, in order. */
  readonly take: (n: number) => Effect.Effect<void, BodyBudgetExhausted>
  /** Takes `n` bytes if every budget has them now. */
  readonly tryTake: (n: number) => boolean
  /** Takes `n` bytes already in memory (a response) if every budget has them now; false (nothing taken) if not. */
  readonly tryCharge: (n: number) => boolean
  /** Gives back all it holds (idempotent). */
  readonly release: () => void
}

export class BodyBudgets extends Context.Tag("effect-relay/BodyBudgets")<BodyBudgets, {
  /** A reservation against the relay's budget and, for a request to a local tunnel, that tunnel's. */
  readonly reserve: (tunnelBudget: ByteBudget.ByteBudget | undefined) => Reservation
  readonly relay: ByteBudget.ByteBudget
}>() {
  static layer = Layer.effect(
    BodyBudgets,
    Effect.map(RelayConfig, (config) => {
      const relay = ByteBudget.make(config.bodyBudgetBytes)
      const reserve = (tunnelBudget: ByteBudget.ByteBudget | undefined): Reservation => {
        // The tunnel's budget first, then the relay's: every exchange takes them in the same order.
        const budgets: ReadonlyArray<readonly [ByteBudget.ByteBudget, "tunnel" | "relay"]> = tunnelBudget === undefined
          ? [[relay, "relay"]]
          : [[tunnelBudget, "tunnel"], [relay, "relay"]]
        const held = budgets.map(() => 0)
        const give = () => {
          budgets.forEach(([budget], i) => budget.give(held[i]!))
          held.fill(0)
        }
        const take = (n: number) =>
          Effect.gen(function*() {
            for (const [i, [budget, name]] of budgets.entries()) {
              if (budget.tryTake(n)) {
                held[i]! += n
                continue
              }
              RelayMetrics.limitHit("body_budget_wait")
              if (!(yield* budget.take(n, config.bodyBudgetWaitMs))) {
                RelayMetrics.limitHit("body_budget_refused")
                return yield* new BodyBudgetExhausted({ budget: name })
              }
              held[i]! += n
            }
          })
        /** Takes `n` from every budget with `takeOne`, or from none. */
        const takeAll = (n: number, takeOne: (budget: ByteBudget.ByteBudget) => boolean) => {
          const taken: Array<number> = []
          for (const [i, [budget]] of budgets.entries()) {
            if (!takeOne(budget)) {
              for (const j of taken) budgets[j]![0].give(n)
              RelayMetrics.limitHit("body_budget_refused")
              return false
            }
            taken.push(i)
          }
          for (const i of taken) held[i]! += n
          return true
        }
        const tryTake = (n: number) => takeAll(n, (budget) => budget.tryTake(n))
        const tryCharge = (n: number) => takeAll(n, (budget) => budget.tryCharge(n))
        return { take, tryTake, tryCharge, release: give }
      }
      return BodyBudgets.of({ reserve, relay })
    })
  )
}
