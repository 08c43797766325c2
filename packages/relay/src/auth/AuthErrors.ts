/** Why a token does not let a request through. */
import { Data } from "effect"

/**
 * No token, a token that does not verify, or an expired one (or the same of a session cookie).
 * `org`: the org of the host asked for, when known (a person's error page says what token to get).
 */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{ readonly reason: string; readonly org?: string }> {
  get message() {
    return this.reason
  }
}

/** A valid token whose orgs do not include the host's org. */
export class Forbidden extends Data.TaggedError("Forbidden")<{ readonly org: string }> {
  get message() {
    return `token does not grant access to org ${this.org}`
  }
}
