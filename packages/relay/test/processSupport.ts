import { HostAgent, HostAgentLive } from "@effect-relay/host"
import { Context, Effect, Exit, Layer, Scope } from "effect"

/** A real host agent (in this process) on `relay`, connected before it returns; stopped with `stop`. */
export const agent = (relay: { readonly ws: string }, hostId: string, targetUrl: string, token: string) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(
      HostAgentLive({ relayUrl: relay.ws, hostId, token, targetUrl, drainRetryMs: 100 }),
      scope
    )
    const host = Context.get(context, HostAgent)
    yield* host.awaitConnected
    return { host, stop: Scope.close(scope, Exit.void) }
  })

/** Polls `${http}/hosts/${hostId}/echo` until it answers 200; resolves with the time it did. */
export const served = (http: string, hostId: string, token: string, timeoutMs = 15_000) =>
  Effect.promise(async () => {
    const deadline = Date.now() + timeoutMs
    let last = ""
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${http}/hosts/${hostId}/echo`, { headers: { authorization: `Bearer ${token}` } })
        last = `${res.status} ${await res.text()}`
        if (res.status === 200) return Date.now()
      } catch (e) {
        last = String(e)
      }
      await new Promise((r) => setTimeout(r, 20))
    }
    throw new Error(`${hostId} not served through ${http} within ${timeoutMs} ms (last: ${last})`)
  })
