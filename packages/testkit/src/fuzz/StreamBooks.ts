/**
 * The evil version 2 host's books: every stream the relay opened on its tunnel, the credit the
 * relay granted, and, per stream, what the host sent on it. Every frame the host sends goes
 * through `sendFrame`/`sendText`, which read it as the relay will (the protocol's own decoders)
 * and book it against the stream it names:
 * - bytes the relay must pass on (Data within the rules) go into the stream's running sha256;
 * - a rule the relay must enforce (bytes over a window, a message on a body stream, a body before
 *   its head, End before the head, a second head, a bad head, more or fewer bytes than declared, a
 *   reset) makes the stream **broken**: its client must not get a complete answer from the host;
 * - what the relay may or may not take (bytes beyond the credit this host knows of, which a grant
 *   still on its way may cover; a hostile but decodable head) only **taints** it.
 * The oracle (`StreamChecks.ts`) holds each client to its stream's book: a complete answer is the
 * exact bytes sent before End, on a stream that is not broken.
 *
 * The host also behaves when told: heads, body pieces within credit, End (`head`, `pump`,
 * `finishAll`), and it grants the relay credit back for request bodies as they arrive.
 */
import {
  type HostToRelayV2,
  HostToRelayV2Codec,
  type RelayToHostV2,
  StreamFrames,
  type Windows
} from "@effect-relay/protocol"
import { Either } from "effect"
import { createHash, type Hash } from "node:crypto"

const { FrameKind } = StreamFrames

export interface StreamEntry {
  readonly id: number
  readonly kind: "http" | "ws"
  /** From the request's path `/r/<nonce>`: which client it is. */
  readonly nonce: string
  readonly method: string
  requestEnded: boolean
  head: { readonly status: number; readonly length: number | undefined; readonly hostile: boolean } | undefined
  /** Body bytes booked (sent within the rules), and their hash. */
  sent: number
  readonly hash: Hash
  /** The hash of the body at End: set once the host completed the response within the rules. */
  digest: string | undefined
  /**
   * The hash of the body once it reached its declared length (within the rules): a client has
   * its whole answer then, whatever breaks afterwards.
   */
  lengthDigest: string | undefined
  /** A rule the relay must enforce was broken on this stream: its client must not see a complete answer. */
  broken: string | undefined
  /** Things the relay may or may not have taken. */
  readonly taints: Array<string>
  /** Why the stream is over for the relay (End, a reset either way, broken), and when. */
  over: string | undefined
  overAt: number | undefined
  /** Credit the relay granted this stream that the host knows of. */
  credit: number
  /** The honest body planned at the head, and how much of it went. */
  planned: Buffer
  offset: number
  finishing: boolean
  /** Kept for one input (a found one): other inputs do not pick it. */
  reserved: boolean
  /** Why the relay reset the stream, if it did (also after the host was done with it). */
  relayReset: string | undefined
  /** A WebSocket stream: the messages sent on it, in order (`t:`/`b:` and the sha256 of what its client should get). */
  readonly messages: Array<string>
}

export type Pick = "waiting" | "responding" | "channel" | "gone" | "any"

export interface BookCounts {
  /** Frames the relay must count in `relay_limit_hits_total{limit="bad_frame"}` (a lower bound). */
  mustCount: number
  /** Frames for streams the relay no longer has (or never had). */
  stale: number
  /** Frames not sent because whether the relay takes them depends on tunnel credit this host cannot know of. */
  withheld: number
  frames: number
  texts: number
}

export interface Books {
  readonly greeted: (windows: Windows) => void
  readonly relayWindows: () => Windows
  readonly tunnelCredit: () => number
  /** A binary frame from the relay. */
  readonly fromRelay: (frame: Buffer) => void
  /** A control message from the relay other than ping and hello. */
  readonly onMessage: (m: RelayToHostV2) => void
  /** A stream of the kind asked for (`u` in [0, 1) picks which), or undefined when there is none. */
  readonly pick: (which: Pick, u: number) => StreamEntry | undefined
  readonly sendFrame: (bytes: Buffer) => void
  readonly sendText: (text: string) => void
  /** An honest head with a planned body of `size` bytes (`declare`: with its length). */
  readonly head: (e: StreamEntry, status: number, size: number, declare: boolean) => void
  /** Sends up to `pieces` pieces of the planned body within credit, then End once all went (when finishing). */
  readonly pump: (e: StreamEntry, pieces: number) => void
  /** Every HTTP stream still open is answered in full as credit allows. */
  readonly finishAll: () => void
  /** Streams that could not finish are reset by the host; how many. */
  readonly giveUp: () => number
  /** The book of the request with `nonce`. */
  readonly byNonce: (nonce: string) => StreamEntry | undefined
  /** The stream of the request with `nonce`, once it comes, is not picked by other inputs. */
  readonly reserve: (nonce: string) => void
  /** Forgets the books of finished requests. */
  readonly forget: (nonces: ReadonlyArray<string>) => void
  readonly counts: BookCounts
}

/** A body of `size` bytes: `label;` repeated. */
export const bodyOf = (label: string, size: number): Buffer => {
  const unit = Buffer.from(`${label};`)
  const out = Buffer.allocUnsafe(size)
  for (let i = 0; i < size; i += unit.length) unit.copy(out, i, 0, Math.min(unit.length, size - i))
  return out
}

const nonceOf = (path: string) => /\/r\/([^/?]+)/.exec(path)?.[1] ?? ""
const channelNonceOf = (path: string) => /\/ws\/([^/?]+)/.exec(path)?.[1] ?? ""

/** What a channel's client should get for a message: a text message as the relay decodes it (invalid UTF-8 replaced). */
export const messageDigest = (payload: Buffer, text: boolean) =>
  `${text ? "t" : "b"}:${createHash("sha256").update(text ? Buffer.from(payload.toString()) : payload).digest("hex")}`

export const makeBooks = (send: (data: string | Buffer) => void): Books => {
  let windows: Windows = { stream: 256 * 1024, tunnel: 4 * 1024 * 1024 }
  let tunnelCredit = windows.tunnel
  const live = new Map<number, StreamEntry>()
  const nonces = new Map<string, StreamEntry>()
  const gone: Array<number> = []
  const reserved = new Set<string>()
  /** The last streams by id, over or not: what the relay says of them later. */
  const recent = new Map<number, StreamEntry>()
  const counts: BookCounts = { mustCount: 0, stale: 0, withheld: 0, frames: 0, texts: 0 }

  const over = (e: StreamEntry, why: string) => {
    if (e.over !== undefined) return
    e.over = why
    e.overAt = Date.now()
    if (live.get(e.id) === e) live.delete(e.id)
    gone.push(e.id)
    if (gone.length > 100) gone.shift()
  }
  const broke = (e: StreamEntry, why: string) => {
    e.broken ??= why
    over(e, `broken: ${why}`)
  }

  const entry = (id: number, kind: "http" | "ws", nonce: string, method: string, requestEnded: boolean): StreamEntry => {
    const e = newEntry({ id, kind, nonce, method, requestEnded, credit: windows.stream, reserved: reserved.delete(nonce) })
    recent.set(id, e)
    if (recent.size > 2000) recent.delete(recent.keys().next().value!)
    const before = live.get(id)
    if (before !== undefined) over(before, "id reused")
    live.set(id, e)
    if (nonce !== "") nonces.set(nonce, e)
    return e
  }

  // ---- what the host sends, booked as the relay will read it ----------------------------------

  /**
   * Whether the relay's answer to these bytes depends on tunnel credit on its way here: the relay
   * may take them or not, and either way these books' tunnel credit would drift from the relay's,
   * and honest streams be reset later for it. Such frames are not sent: bytes beyond a tunnel's
   * credit are sent as bytes over its whole window (which the relay refuses whatever it granted).
   */
  const uncertain = (frame: StreamFrames.StreamFrame) => {
    if (frame.kind === FrameKind.Data) return frame.payload.length > tunnelCredit && frame.payload.length <= windows.tunnel
    if (frame.kind === FrameKind.WsText || frame.kind === FrameKind.WsBinary) return tunnelCredit <= 0
    return false
  }

  const bookData = (kind: StreamFrames.FrameKind, stream: number, payload: Buffer) => {
    const message = kind !== FrameKind.Data
    const n = payload.length
    const cost = message ? Math.max(n, 1) : n
    // The relay's tunnel credit is at least what this host knows of (grants may be on their way);
    // bytes it may or may not take were not sent (`uncertain`).
    const withinTunnel = message ? tunnelCredit > 0 : n <= tunnelCredit
    const overTunnelWindow = !message && n > windows.tunnel
    if (withinTunnel) tunnelCredit -= cost
    if (overTunnelWindow) counts.mustCount++
    const e = live.get(stream)
    if (e === undefined) {
      counts.stale++
      return
    }
    if (e.kind === "ws") {
      if (message && cost <= e.credit) e.credit -= cost
      else if (message) e.taints.push("message beyond the credit known")
      if (message && e.messages.length < 500) e.messages.push(messageDigest(payload, kind === FrameKind.WsText))
      return
    }
    if (message) {
      counts.mustCount += overTunnelWindow ? 0 : 1
      return broke(e, "a message on a body stream")
    }
    if (overTunnelWindow) return broke(e, "bytes over the tunnel's window")
    if (n > windows.stream) {
      counts.mustCount++
      return broke(e, "bytes over the stream's window")
    }
    if (!withinTunnel || n > e.credit) e.taints.push(`${n} B beyond the credit known (${Math.min(e.credit, tunnelCredit)})`)
    e.credit = Math.max(0, e.credit - n)
    if (e.head === undefined) {
      counts.mustCount++
      return broke(e, "a body before its head")
    }
    if (e.head.length !== undefined && e.sent + n > e.head.length) {
      counts.mustCount++
      return broke(e, "more bytes than the declared length")
    }
    e.sent += n
    e.hash.update(payload)
    if (e.sent === e.head.length) e.lengthDigest = e.hash.copy().digest("hex")
  }

  const bookEnd = (stream: number) => {
    const e = live.get(stream)
    if (e === undefined) return void counts.stale++
    if (e.kind === "ws") return
    if (e.head === undefined) {
      counts.mustCount++
      return broke(e, "End before the head")
    }
    if (e.head.length !== undefined && e.sent !== e.head.length) {
      counts.mustCount++
      return broke(e, `End after ${e.sent} of ${e.head.length} declared bytes`)
    }
    e.digest = e.hash.digest("hex")
    over(e, "End")
  }

  const sendFrame = (bytes: Buffer) => {
    const frame = StreamFrames.decode(bytes)
    if (typeof frame !== "string" && uncertain(frame)) {
      counts.withheld++
      return
    }
    counts.frames++
    if (typeof frame === "string") counts.mustCount++
    else if (frame.kind === FrameKind.End) bookEnd(frame.stream)
    else if (frame.kind !== FrameKind.Window) bookData(frame.kind, frame.stream, Buffer.from(frame.payload))
    send(bytes)
  }

  /** A head that decoded: what the relay does with it. */
  const bookHead = (m: Extract<HostToRelayV2, { readonly _tag: "http:response" }>, hostile: boolean) => {
    const e = live.get(m.stream)
    if (e === undefined || e.kind === "ws") return
    if (e.head !== undefined) {
      counts.mustCount++
      return broke(e, "a second head")
    }
    e.head = { status: m.status, length: m.length, hostile }
    if (m.status < 200) {
      counts.mustCount++
      return broke(e, `status ${m.status}`)
    }
    if (hostile) e.taints.push("a hostile head")
    if (m.end) {
      if (m.length !== undefined && m.length > 0) {
        counts.mustCount++
        return broke(e, `a head that ends the body it declares ${m.length} bytes of`)
      }
      e.digest = e.hash.digest("hex")
      over(e, "head with end")
    }
  }

  const sendText = (text: string, hostile = true) => {
    counts.texts++
    const decoded = HostToRelayV2Codec.decode(text)
    if (Either.isRight(decoded)) {
      const m = decoded.right
      switch (m._tag) {
        case "http:response":
          bookHead(m, hostile)
          break
        case "reset": {
          const e = live.get(m.stream)
          if (e !== undefined && e.kind === "http") broke(e, "reset by the host")
          else if (e !== undefined) over(e, "reset by the host")
          break
        }
        case "ws:close": {
          const e = live.get(m.stream)
          if (e !== undefined && e.kind === "ws") over(e, "closed by the host")
          break
        }
      }
    } else {
      counts.mustCount++
      // A head that does not decode fails the stream it names (as the relay reads `stream`).
      const named = decoded.left.stream
      const e = named === undefined ? undefined : live.get(named)
      if (decoded.left.type === "http:response" && e !== undefined && e.kind === "http") broke(e, `a bad head (${decoded.left.problem})`)
    }
    send(text)
  }

  // ---- what the relay sends -------------------------------------------------------------------

  const fromRelay = (bytes: Buffer) => {
    const frame = StreamFrames.decode(bytes)
    if (typeof frame === "string") return
    switch (frame.kind) {
      case FrameKind.Window: {
        const grant = StreamFrames.windowBytes(frame)
        if (frame.stream === 0) tunnelCredit = Math.min(tunnelCredit + grant, 0x7fff_ffff)
        else {
          const e = live.get(frame.stream)
          if (e !== undefined) e.credit = Math.min(e.credit + grant, 0x7fff_ffff)
        }
        // Credit came: streams being finished go on.
        for (const e of [...live.values()]) if (e.finishing) pump(e, Infinity)
        return
      }
      case FrameKind.End: {
        const e = live.get(frame.stream)
        if (e !== undefined) e.requestEnded = true
        return
      }
      default: {
        // A request body or a client's message: taken at once, credit granted back (honestly).
        const cost = Math.max(frame.payload.length, frame.kind === FrameKind.Data ? 0 : 1)
        if (cost === 0) return
        send(StreamFrames.window(frame.stream, cost))
        send(StreamFrames.window(0, cost))
      }
    }
  }

  const onMessage = (m: RelayToHostV2) => {
    switch (m._tag) {
      case "http":
        entry(m.stream, "http", nonceOf(m.path), m.method, m.end)
        return
      case "ws:open":
        entry(m.stream, "ws", channelNonceOf(m.path), "GET", false)
        return
      case "ws:close":
      case "reset": {
        const known = recent.get(m.stream)
        if (m._tag === "reset" && known !== undefined) known.relayReset ??= m.reason ?? "no reason"
        const e = live.get(m.stream)
        if (e !== undefined) over(e, `${m._tag} from the relay${m._tag === "reset" && m.reason ? ` (${m.reason})` : ""}`)
        return
      }
    }
  }

  // ---- behaving -------------------------------------------------------------------------------

  const head = (e: StreamEntry, status: number, size: number, declare: boolean) => {
    e.planned = bodyOf(`${e.nonce}.${e.id}`, size)
    e.offset = 0
    sendText(HostToRelayV2Codec.encode({
      _tag: "http:response",
      stream: e.id,
      status,
      headers: { "content-type": "application/octet-stream", "x-fuzz-stream": String(e.id) },
      ...(declare ? { length: size } : {}),
      end: size === 0
    }), false)
  }

  const pump = (e: StreamEntry, pieces: number) => {
    for (let i = 0; i < pieces && e.over === undefined && e.head !== undefined && e.offset < e.planned.length; i++) {
      const n = Math.min(StreamFrames.maxDataBytes, e.planned.length - e.offset, e.credit, tunnelCredit)
      if (n <= 0) break
      sendFrame(StreamFrames.encode(FrameKind.Data, e.id, e.planned.subarray(e.offset, e.offset + n)))
      e.offset += n
    }
    if (e.finishing && e.over === undefined && e.head !== undefined && e.offset >= e.planned.length) sendFrame(StreamFrames.end(e.id))
  }

  const pick = (which: Pick, u: number): StreamEntry | undefined => {
    if (which === "gone") {
      if (gone.length === 0) return undefined
      const id = gone[Math.floor(u * gone.length)]!
      return live.get(id) === undefined ? { ...entryStub, id } : undefined
    }
    const all = [...live.values()].filter((e) =>
      e.reserved ? false : which === "any" ? true : which === "channel" ? e.kind === "ws" : e.kind === "http" && (which === "waiting" ? e.head === undefined : e.head !== undefined)
    )
    return all.length === 0 ? undefined : all[Math.floor(u * all.length)]
  }

  return {
    greeted: (w) => {
      tunnelCredit += w.tunnel - windows.tunnel
      for (const e of live.values()) e.credit += w.stream - windows.stream
      windows = w
    },
    relayWindows: () => windows,
    tunnelCredit: () => tunnelCredit,
    fromRelay,
    onMessage,
    pick,
    sendFrame,
    sendText: (text) => sendText(text, true),
    head,
    pump,
    finishAll: () => {
      for (const e of [...live.values()]) {
        if (e.kind !== "http") continue
        e.finishing = true
        if (e.head === undefined) head(e, 200, 1000 + (e.id % 3000), e.id % 2 === 0)
        pump(e, Infinity)
      }
    },
    giveUp: () => {
      let n = 0
      for (const e of [...live.values()]) {
        if (e.kind !== "http") continue
        n++
        sendText(HostToRelayV2Codec.encode({ _tag: "reset", stream: e.id, reason: "fuzz host gave up" }), false)
      }
      return n
    },
    byNonce: (nonce) => nonces.get(nonce),
    reserve: (nonce) => void reserved.add(nonce),
    forget: (list) => {
      for (const nonce of list) nonces.delete(nonce)
    },
    counts
  }
}

/** A stream's book as it opens: nothing sent, nothing broken. */
const newEntry = (
  opened: { readonly [K in "id" | "kind" | "nonce" | "method" | "requestEnded" | "credit" | "reserved"]: StreamEntry[K] }
): StreamEntry => ({
  ...opened,
  head: undefined,
  sent: 0,
  hash: createHash("sha256"),
  digest: undefined,
  lengthDigest: undefined,
  broken: undefined,
  taints: [],
  over: undefined,
  overAt: undefined,
  planned: Buffer.alloc(0),
  offset: 0,
  finishing: false,
  relayReset: undefined,
  messages: []
})

/** A stream id the relay let go of: only its id matters to the frames that name it. */
const entryStub: StreamEntry = {
  ...newEntry({ id: 0, kind: "http", nonce: "", method: "", requestEnded: true, credit: 0, reserved: false }),
  over: "gone",
  overAt: 0
}
