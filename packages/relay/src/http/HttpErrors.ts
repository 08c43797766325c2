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

/** The client sent nothing of its request body for the body read timeout. */
export class BodyReadTimeout extends Data.TaggedError("BodyReadTimeout")<{ readonly ms: number }> {
  get message() {
    return `no request body bytes for ${this.ms} ms`
  }
}

/** The bytes of bodies in flight (the whole relay's, or this host's) left no room for this body in time. */
export class BodyBudgetExhausted extends Data.TaggedError("BodyBudgetExhausted")<{ readonly budget: "relay" | "tunnel" }> {
  get message() {
    return this.budget === "relay"
      ? "the relay is carrying as many request and response bodies as it may: try again shortly"
      : "this host's tunnel is carrying as many request and response bodies as it may: try again shortly"
  }
}

/**
 * A hostname under `PUBLIC_DOMAIN` that names no host: reserved (`www.D`), or not
 * `{name}--{org}` in lowercase letters, digits and single hyphens.
 */
export class BadHostname extends Data.TaggedError("BadHostname")<{
  readonly hostname: string
  readonly domain: string
  readonly reserved: boolean
}> {
  get message() {
    return this.reserved
      ? `${this.hostname} is reserved: it is not a host's hostname`
      : `${this.hostname} is not a host's hostname: hosts are at {name}--{org}.${this.domain}, each part lowercase letters, digits and single hyphens`
  }
}

/**
 * A session cookie on a request that did not come from the host's own pages: another site's
 * page (another host's hostname under the same domain included) cannot use a person's session.
 */
export class CrossSiteSession extends Data.TaggedError("CrossSiteSession")<{}> {
  get message() {
    return "a session cookie is only accepted on requests from this host's own pages and on links to it"
  }
}
