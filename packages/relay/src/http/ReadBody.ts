import { BodyLimit } from "@effect-relay/protocol"
import { Effect } from "effect"
import type * as http from "node:http"
import { BadRequest, PayloadTooLarge } from "./HttpErrors.js"

/** Reads a client's request body, refusing anything over `limit` bytes (before reading it, where the length is declared). */
export const readBody = (req: http.IncomingMessage, limit: number) =>
  Effect.async<Buffer, PayloadTooLarge | BadRequest>((resume) => {
    const stop = BodyLimit.collect(req, limit, (result) => {
      switch (result._tag) {
        case "Body":
          return resume(Effect.succeed(result.body))
        case "TooLarge":
          return resume(Effect.fail(new PayloadTooLarge({ limit })))
        case "Failed":
          return resume(Effect.fail(new BadRequest({ reason: `could not read the request body: ${result.detail}` })))
      }
    })
    return Effect.sync(stop)
  })
