/**
 * The agent's N tunnels as its sessions share them: which relay URL each session aims at, what
 * state it is in, which relay (by the hello's `relayId`) it is on, and whether the relay behind
 * each URL says hello. Sessions read it to pick distinct relays and write it as they go;
 * `HostAgent` publishes it (`tunnels`) and the one-tunnel summary (`state`) made from it.
 *
 * ```
 *            pick (a free URL, or a shared one whose relay says hello)
 *   Standby <-------------------------- Connecting {attempt, relay} <---+
 *      |       (shared URL, relay has      |  tunnel open + greeting     |
 *      |        not said hello)            v                             | tunnel ended
 *      +------ state changed ----->  Connected {since, relay, relayId?} -+
 * ```
 *
 * A session keeps its URL (its aim) between attempts, in its backoff too: another session joins
 * that URL only once the relay behind it has said hello. A relay that does not (an older relay)
 * would replace one of the agent's tunnels with the other, so such a URL carries one tunnel.
 */
import { Data, Effect, Equal, Random, Stream, Subscribable, SubscriptionRef } from "effect"
import { chooseRelay } from "./RelayChoice.js"
import { displayUrl } from "./TunnelUrl.js"

/** Where the agent's tunnels are, as one: dialing (the n-th attempt since one was last connected), or at least one open. */
export type TunnelState = Data.TaggedEnum<{
  Connecting: { readonly attempt: number }
  Connected: { readonly since: number }
}>
export const TunnelState = Data.taggedEnum<TunnelState>()

/** One session's tunnel. `relay` is the URL shown in logs (no credentials or query). */
export type SessionState = Data.TaggedEnum<{
  /** Waiting for a relay URL it may dial (it shares its only one with a session whose relay has not said hello). */
  Standby: { readonly session: number }
  Connecting: { readonly session: number; readonly attempt: number; readonly relay?: string }
  Connected: {
    readonly session: number
    readonly since: number
    readonly relay: string
    readonly relayId?: string
    readonly region?: string
  }
}>
export const SessionState = Data.taggedEnum<SessionState>()

interface Slot {
  readonly state: SessionState
  /** The URL the session dials or is on (kept during its backoff); none on standby. */
  readonly aim?: string
  /** The relay its open tunnel greeted it from (claimed at the greeting, before `Connected`). */
  readonly relayId?: string
}

interface Shared {
  readonly slots: ReadonlyArray<Slot>
  /** Whether the relay behind a URL said hello the last time a tunnel opened through it. */
  readonly greets: ReadonlyMap<string, boolean>
  /** Since when at least one tunnel has been open. */
  readonly upSince: number | undefined
}

export interface Tunnels {
  /** Every session's state, by index. */
  readonly sessions: Subscribable.Subscribable<ReadonlyArray<SessionState>>
  /** The summary: Connected while any tunnel is. */
  readonly state: SubscriptionRef.SubscriptionRef<TunnelState>
  readonly connectedCount: Effect.Effect<number>
  /**
   * The URL session `i` dials for its attempt `attempt` (see `RelayChoice`), now its aim. A URL
   * another session aims at whose relay has not said hello puts it on standby until that
   * changes; `onStandby` runs then, with what is known of that relay (said hello last time or not).
   */
  readonly pick: (
    i: number,
    attempt: number,
    last: string | undefined,
    onStandby: (url: string, greets: boolean | undefined) => Effect.Effect<void>
  ) => Effect.Effect<string>
  /** Whether the relay behind `url` said hello the last time a tunnel opened through it (unknown: undefined). */
  readonly greets: (url: string) => Effect.Effect<boolean | undefined>
  /**
   * Session `i`'s tunnel through `url` was greeted with `hello` (or by another first frame, or by
   * nothing in time: `undefined`). Returns the session already on that relay, if another is.
   */
  readonly greeted: (i: number, url: string, hello: { readonly relayId: string } | undefined) => Effect.Effect<number | undefined>
  readonly connected: (i: number, info: { readonly since: number; readonly relayId?: string; readonly region?: string }) => Effect.Effect<void>
  /** Session `i`'s attempt or tunnel ended: back to dialing (from attempt 1 if it was connected), its URL kept. */
  readonly down: (i: number) => Effect.Effect<void>
  /** The relays the open tunnels are on (relayId, else the URL as logged). */
  readonly relaysInUse: Effect.Effect<ReadonlyArray<string>>
}

const summary = (shared: Shared): TunnelState => {
  if (shared.upSince !== undefined) return TunnelState.Connected({ since: shared.upSince })
  const attempts = shared.slots.map((slot) => (slot.state._tag === "Connecting" ? slot.state.attempt : 1))
  return TunnelState.Connecting({ attempt: Math.max(1, ...attempts) })
}

const isConnected = (slot: Slot) => slot.state._tag === "Connected"

/** Another session aims at `url` and the relay behind it has not said hello. */
const blocked = (shared: Shared, i: number, url: string) =>
  shared.greets.get(url) !== true && shared.slots.some((slot, j) => j !== i && slot.aim === url)

export const make = (urls: ReadonlyArray<string>, count: number): Effect.Effect<Tunnels> =>
  Effect.gen(function*() {
    const initial: Shared = {
      slots: Array.from({ length: count }, (_, session) => ({ state: SessionState.Connecting({ session, attempt: 1 }) })),
      greets: new Map(),
      upSince: undefined
    }
    const shared = yield* SubscriptionRef.make(initial)
    const state = yield* SubscriptionRef.make(summary(initial))

    /** Changes the shared state and the summary together (under the shared state's lock). */
    const modify = <A>(f: (s: Shared) => readonly [A, Shared]) =>
      SubscriptionRef.modifyEffect(shared, (s) => {
        const [result, next] = f(s)
        const was = summary(s)
        const now = summary(next)
        return Effect.as(Equal.equals(was, now) ? Effect.void : SubscriptionRef.set(state, now), [result, next] as const)
      })
    const setSlot = (s: Shared, i: number, slot: Slot, extra: Partial<Shared> = {}): Shared => ({
      ...s,
      ...extra,
      slots: s.slots.map((old, j) => (j === i ? slot : old))
    })

    const pick: Tunnels["pick"] = (i, attempt, last, onStandby) =>
      Effect.gen(function*() {
        while (true) {
          const r = yield* Random.nextIntBetween(0, 1 << 30)
          const chosen = yield* modify((s): readonly [{ readonly url: string; readonly standby: boolean }, Shared] => {
            const aimedByOthers = new Set(s.slots.flatMap((slot, j) => (j !== i && slot.aim !== undefined ? [slot.aim] : [])))
            const url = chooseRelay({ urls, session: i, aimedByOthers, last }, (n) => r % n)
            return blocked(s, i, url)
              ? [{ url, standby: true }, setSlot(s, i, { state: SessionState.Standby({ session: i }) })]
              : [
                { url, standby: false },
                setSlot(s, i, { state: SessionState.Connecting({ session: i, attempt, relay: displayUrl(url) }), aim: url })
              ]
          })
          if (!chosen.standby) return chosen.url
          const greets = (yield* SubscriptionRef.get(shared)).greets.get(chosen.url)
          yield* onStandby(chosen.url, greets)
          // Until the URL is free, or its relay says (or stops saying) hello: then pick again.
          yield* shared.changes.pipe(
            Stream.filter((s) => !blocked(s, i, chosen.url) || s.greets.get(chosen.url) !== greets),
            Stream.runHead
          )
        }
      })

    const greeted: Tunnels["greeted"] = (i, url, hello) =>
      modify((s) => {
        const greets = new Map(s.greets).set(url, hello !== undefined)
        const holder = hello === undefined ? -1 : s.slots.findIndex((slot, j) => j !== i && slot.relayId === hello.relayId)
        if (holder >= 0) return [holder, { ...s, greets }]
        return [undefined, setSlot(s, i, { ...s.slots[i]!, ...(hello ? { relayId: hello.relayId } : {}) }, { greets })]
      })

    const connected: Tunnels["connected"] = (i, info) =>
      modify((s) => {
        const slot = s.slots[i]!
        const state = SessionState.Connected({ session: i, relay: slot.aim !== undefined ? displayUrl(slot.aim) : "", ...info })
        const relayId = info.relayId ?? slot.relayId
        return [undefined, setSlot(s, i, { ...slot, state, ...(relayId !== undefined ? { relayId } : {}) }, { upSince: s.upSince ?? info.since })]
      })

    const down: Tunnels["down"] = (i) =>
      modify((s) => {
        const { aim, state: was } = s.slots[i]!
        const attempt = was._tag === "Connecting" ? was.attempt : 1
        const state = SessionState.Connecting({ session: i, attempt, ...(aim !== undefined ? { relay: displayUrl(aim) } : {}) })
        const next = setSlot(s, i, aim !== undefined ? { state, aim } : { state })
        return [undefined, next.slots.some(isConnected) ? next : { ...next, upSince: undefined }]
      })

    const sessions = Subscribable.make({
      get: Effect.map(SubscriptionRef.get(shared), (s) => s.slots.map((slot) => slot.state)),
      changes: Stream.map(shared.changes, (s) => s.slots.map((slot) => slot.state))
    })

    return {
      sessions,
      state,
      connectedCount: Effect.map(SubscriptionRef.get(shared), (s) => s.slots.filter(isConnected).length),
      pick,
      greets: (url) => Effect.map(SubscriptionRef.get(shared), (s) => s.greets.get(url)),
      greeted,
      connected,
      down,
      relaysInUse: Effect.map(SubscriptionRef.get(shared), (s) =>
        [...new Set(s.slots.flatMap((slot) => slot.state._tag === "Connected" ? [slot.relayId ?? displayUrl(slot.aim ?? "")] : []))])
    }
  })
