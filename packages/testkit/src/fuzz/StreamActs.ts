/**
 * What generator 5's acts share: an act is frames and messages the evil version 2 host sends,
 * built when it is sent from the streams open then (`Books.pick`); these name the streams to send
 * them on and make the bytes.
 */
import { StreamFrames } from "@effect-relay/protocol"
import type { Books, Pick } from "./StreamBooks.js"
import type { Prng } from "./Prng.js"

/** Sends frames and messages through the books; says what it sent. */
export type Act = (books: Books) => string

export interface NamedAct {
  readonly note: string
  readonly act: Act
}

/** A stream id to name: a stream of the kind asked for, else one that is not there. */
export const streamId = (r: Prng, books: Books, which: Pick): { readonly id: number; readonly what: string } => {
  const found = books.pick(which, r.next())
  if (found !== undefined) return { id: found.id, what: `${which} stream ${found.id}` }
  return unknownId(r)
}

export const unknownId = (r: Prng): { readonly id: number; readonly what: string } =>
  r.weighted<() => { id: number; what: string }>([
    [() => ({ id: 0, what: "stream 0" }), 2],
    [() => ({ id: StreamFrames.maxStreamId, what: "stream 2^32-1" }), 2],
    [() => ({ id: r.int(1000, StreamFrames.maxStreamId - 1), what: "unknown stream" }), 3],
    [() => ({ id: r.int(1, 200), what: "unknown small stream" }), 2]
  ])()

export const anyId = (r: Prng, books: Books) => streamId(r, books, r.pick<Pick>(["waiting", "responding", "channel", "gone", "any"]))

export const data = (id: number, n: number, fill = 0x78) => StreamFrames.encode(StreamFrames.FrameKind.Data, id, Buffer.alloc(n, fill))

/** Body bytes of `n`: small mostly, now and then around the piece size or larger. */
export const dataSize = (r: Prng) => r.weighted<() => number>([[() => r.int(0, 64), 6], [() => r.int(65, 4096), 3], [() => r.pick([65535, 65536, 65537]), 1]])()
