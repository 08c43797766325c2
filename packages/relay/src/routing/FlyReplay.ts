/**
 * Routing mode `fly-replay`: instead of proxying a request to the relay that holds its host,
 * this relay answers with a `fly-replay` header and Fly's proxy sends the request there.
 */
import type { IncomingMessage } from "node:http"
import { Effect } from "effect"
import { mayRetry, type PeerUnreachable } from "./RoutingErrors.js"
import type { Owner } from "./Router.js"

/** Where Fly should replay to: the owner machine in this region, else the owner's region. */
export const replayHeader = (owner: Owner, ownRegion: string): string =>
  owner.region === ownRegion ? `instance=${owner.machineId}` : `region=${owner.region}`

/**
 * `attempt` on each owner in turn until one can be reached: an owner that refuses the connection
 * or cannot be reached is skipped within the same request (when nothing reached it, or `method`
 * is safe to send twice). Fails with the last owner's error.
 */
export const firstReachable = <A, E extends { readonly _tag: string }, R>(
  owners: readonly [Owner, ...ReadonlyArray<Owner>],
  method: string | undefined,
  attempt: (owner: Owner) => Effect.Effect<A, E | PeerUnreachable, R>
): Effect.Effect<A, E | PeerUnreachable, R> => {
  const [first, ...rest] = owners
  return rest.reduce<Effect.Effect<A, E | PeerUnreachable, R>>(
    (tried, next) => Effect.catchIf(tried, (e): e is PeerUnreachable => e._tag === "PeerUnreachable" && mayRetry(e, method), () => attempt(next)),
    attempt(first)
  )
}

/** Fly cannot replay a request whose body is over 1 MB (or of unknown length): those are proxied. */
export const replayable = (req: IncomingMessage): boolean =>
  req.headers["transfer-encoding"] === undefined && Number(req.headers["content-length"] ?? "0") <= 1_000_000
