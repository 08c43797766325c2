/** A client request the relay cannot take as it is. */
import { Data } from "effect"

/** The hostId in the path or query does not match `{orgId}:{name}`. */
export class BadHostId extends Data.TaggedError("BadHostId")<{ readonly input: string }> {
  get message() {
    return "hostId must be {orgId}:{name}, each part 1-64 of [A-Za-z0-9._-]"
  }
}

/** The request body is larger than the relay accepts. */
export class PayloadTooLarge extends Data.TaggedError("PayloadTooLarge")<{ readonly limit: number }> {
  get message() {
    return `request body is larger than ${this.limit} bytes`
  }
}

/** The body could not be read from the client (it disconnected or sent garbage). */
export class BadRequest extends Data.TaggedError("BadRequest")<{ readonly reason: string }> {
  get message() {
    return this.reason
  }
}

/** No route for this path. */
export class RouteNotFound extends Data.TaggedError("RouteNotFound")<{ readonly path: string }> {
  get message() {
    return `no route for ${this.path}`
  }
}
