import { Schema } from "effect"

/**
 * The relay told this host it is draining: either in-band (`{type:"drain"}`)
 * or with close code 4001. A host that sees it resets its retry schedule and
 * reconnects at once; every other way a tunnel ends keeps climbing the schedule.
 */
export class DrainSignal extends Schema.TaggedError<DrainSignal>()("DrainSignal", {
  source: Schema.Literal("frame", "close"),
  reason: Schema.optional(Schema.String)
}) {
  get message() {
    return `relay is draining (${this.source}${this.reason ? `: ${this.reason}` : ""})`
  }
}
