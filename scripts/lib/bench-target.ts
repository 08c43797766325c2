/**
 * The target every system in bench:forward forwards to, in a process of its
 * own (so an in-process load generator does not share its event loop): the
 * testkit's StreamTarget, whose routes the scenarios use: `GET /small` answers
 * "ok", `POST /echo` echoes its body, `/sse` writes timed events, `/bytes` and
 * `/upload` send and check large bodies (the stamped pattern for a GiB), and a
 * WebSocket echoes each message. Prints `{"port":N}` on stdout once it listens
 * on 127.0.0.1, and serves until it is killed.
 */
import { startStreamTarget } from "@effect-relay/testkit"
import { Effect } from "effect"

Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const target = yield* startStreamTarget
  console.log(JSON.stringify({ port: target.port }))
  return yield* Effect.never
})))
