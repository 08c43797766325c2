/**
 * Reading a client's request body, within every bound: the per-request limit (413), room in the
 * body budgets (waited for when the length is declared, else taken chunk by chunk: 503 busy when
 * there is none), and a read timeout while the client sends nothing (408).
 */
import { BodyLimit } from "@effect-relay/protocol"
import { Effect } from "effect"
import type * as http from "node:http"
import * as RelayMetrics from "../metrics/RelayMetrics.js"
import type { Reservation } from "./BodyBudgets.js"
import { BadRequest, BodyBudgetExhausted, BodyReadTimeout, PayloadTooLarge } from "./HttpErrors.js"

export interface ReadOptions {
  readonly limit: number
  readonly readTimeoutMs: number
  readonly reservation: Reservation
}

type ReadError = PayloadTooLarge | BadRequest | BodyReadTimeout | BodyBudgetExhausted

export const readBody = (req: http.IncomingMessage, options: ReadOptions): Effect.Effect<Buffer, ReadError> =>
  Effect.gen(function*() {
    const declared = BodyLimit.declaredLength(req)
    if (declared !== undefined && declared > options.limit) {
      RelayMetrics.limitHit("body_too_large")
      return yield* new PayloadTooLarge({ limit: options.limit })
    }
    // A declared length is room to wait for before a byte is read; a chunked body takes room as it comes.
    if (declared !== undefined && declared > 0) yield* options.reservation.take(declared)
    return yield* collect(req, options, declared === undefined)
  })

const collect = (req: http.IncomingMessage, options: ReadOptions, chunked: boolean) =>
  Effect.async<Buffer, ReadError>((resume) => {
    // Only while the body is read: afterwards the client waits for the host, which may take a while.
    const timeoutMs = options.readTimeoutMs
    const onTimeout = () => {
      stop()
      RelayMetrics.limitHit("body_read_timeout")
      resume(Effect.fail(new BodyReadTimeout({ ms: timeoutMs })))
    }
    req.setTimeout(timeoutMs, onTimeout)
    const done = () => {
      req.off("timeout", onTimeout)
      req.socket?.setTimeout(0)
    }
    const stop = BodyLimit.collect(req, options.limit, (result) => {
      done()
      switch (result._tag) {
        case "Body":
          return resume(Effect.succeed(result.body))
        case "TooLarge":
          RelayMetrics.limitHit("body_too_large")
          return resume(Effect.fail(new PayloadTooLarge({ limit: options.limit })))
        case "NotAdmitted":
          return resume(Effect.fail(new BodyBudgetExhausted({ budget: "relay" })))
        case "Failed":
          return resume(Effect.fail(new BadRequest({ reason: `could not read the request body: ${result.detail}` })))
      }
    }, chunked ? { admit: options.reservation.tryTake } : {})
    return Effect.sync(() => {
      done()
      stop()
    })
  })
