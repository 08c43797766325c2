/**
 * A request sent on a kept-alive socket that the server closed at that very moment (its idle
 * timeout) fails with a reset before any answer: it never reached the server, so it is safe to
 * send once more, on a fresh socket. The relay's peer proxy and the host agent's target client
 * both do this.
 */
import type { ClientRequest } from "node:http"
import { Effect } from "effect"

/** Whether `error` on `request` is that case: a reset on a reused socket (call only before any response). */
export const isStaleSocket = (request: ClientRequest, error: unknown): boolean =>
  request.reusedSocket && (error as NodeJS.ErrnoException | undefined)?.code === "ECONNRESET"

/** Runs `send`, and once more when it fails on a stale socket (its error says so with `staleSocket: true`). */
export const retryOnStaleSocket = <A, E, R>(send: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.catchIf(send, (e) => (e as { readonly staleSocket?: boolean } | undefined)?.staleSocket === true, () => send)
