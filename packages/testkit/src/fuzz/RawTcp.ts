/**
 * One raw TCP exchange with the relay: bytes written as a plan says (in parts, with gaps, a
 * WebSocket's frames once the answer is a 101), then a half-close, a reset, or holding the
 * connection open; the answer is read for its status line and, after a 101, the server's frames.
 */
import * as net from "node:net"
import { serverFrames } from "./RawWs.js"

export interface RawPlan {
  /** Written in order, `gapMs` apart. */
  readonly parts: ReadonlyArray<Buffer>
  readonly gapMs: number
  /**
   * Written once the answer's head came, `gapMs` apart: a WebSocket's frames after its 101
   * (`when: "101"`, nothing is written after another answer), or bytes after any answer.
   */
  readonly after?: { readonly parts: ReadonlyArray<Buffer>; readonly when: "101" | "answer" }
  /** After writing: half-close (`end`), reset soon after (`destroy`), or keep the connection open. */
  readonly finish: "end" | "destroy" | "hold"
  /** How long the exchange may take before this side gives up and resets the connection. */
  readonly holdMs: number
  /** Whether the relay owes an answer (a status line or a close) before `holdMs` is up. */
  readonly owed: boolean
}

export interface RawOutcome {
  /** The status of the first answer, when one came. */
  readonly status: number | undefined
  /** The `error` of the first answer's JSON body, when it has one (the relay's own answers do). */
  readonly relayError: string | undefined
  /** Status lines seen (pipelined requests get several). */
  readonly answers: number
  /** The relay closed (or reset) the connection before this side gave up. */
  readonly peerClosed: boolean
  readonly error: string | undefined
  /** After a 101: frames the server sent and the close frame's code. */
  readonly ws: { readonly frames: number; readonly closeFrame: boolean; readonly closeCode: number | undefined } | undefined
  readonly ms: number
}

const statusLine = /^HTTP\/1\.[01] (\d{3})/

/** Runs `plan` against 127.0.0.1:`port`; never rejects. */
export const exchange = (port: number, plan: RawPlan): Promise<RawOutcome> =>
  new Promise((resolve) => {
    const started = Date.now()
    const socket = net.connect(port, "127.0.0.1")
    let head = Buffer.alloc(0)
    /** The first bytes of the answer, for its JSON error. */
    let firstBytes = Buffer.alloc(0)
    let headDone = false
    let status: number | undefined
    let answers = 0
    let error: string | undefined
    let peerClosed = false
    let done = false
    let frames: ReturnType<typeof serverFrames> | undefined
    const timers: Array<NodeJS.Timeout> = []
    const later = (ms: number, f: () => void) => timers.push(setTimeout(f, ms))

    const finish = () => {
      if (done) return
      done = true
      for (const t of timers) clearTimeout(t)
      socket.destroy()
      const relayError = /"error":"([a-z_]{1,40})"/.exec(firstBytes.toString("latin1"))?.[1]
      resolve({ status, relayError, answers, peerClosed, error, ws: frames?.summary(), ms: Date.now() - started })
    }
    const write = (data: Buffer) => {
      if (!socket.destroyed && socket.writable) socket.write(data, () => {})
    }
    const writeAll = (parts: ReadonlyArray<Buffer>, then: () => void) => {
      parts.forEach((part, i) => later(i * plan.gapMs, () => write(part)))
      later(parts.length * plan.gapMs, then)
    }
    let partsWritten = false
    let ended = false
    const ending = () => {
      if (ended) return
      ended = true
      if (plan.finish === "end") socket.end()
      else if (plan.finish === "destroy") later(20, finish)
    }

    socket.on("data", (chunk: Buffer) => {
      if (frames !== undefined) return frames.push(chunk)
      // Counts status lines of pipelined answers (their bodies may contain anything; good enough for a tally).
      if (firstBytes.length < 4096) firstBytes = Buffer.concat([firstBytes, chunk]).subarray(0, 4096)
      const text = chunk.toString("latin1")
      answers += text.match(/HTTP\/1\.[01] \d{3}/g)?.length ?? 0
      if (headDone) return
      head = Buffer.concat([head, chunk])
      const match = statusLine.exec(head.toString("latin1"))
      if (match) status = Number(match[1])
      const end = head.indexOf("\r\n\r\n")
      if (end === -1) {
        if (head.length > 64 * 1024) headDone = true
        return
      }
      headDone = true
      if (status === 101) {
        frames = serverFrames()
        frames.push(head.subarray(end + 4))
      }
      if (plan.after !== undefined && (status === 101 || plan.after.when === "answer")) writeAll(plan.after.parts, ending)
      else if (partsWritten) ending()
    })
    socket.on("error", (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message
    })
    socket.on("close", () => {
      peerClosed = !done
      finish()
    })
    socket.on("connect", () => writeAll(plan.parts, () => {
      partsWritten = true
      // Bytes that wait for the answer go out once it came, and the plan ends after them.
      if (plan.after === undefined || headDone) ending()
    }))
    later(plan.holdMs, finish)
  })

/** A short label for an outcome, for the report's tallies. */
export const outcomeLabel = (o: RawOutcome): string => {
  if (o.ws !== undefined) return `101 ws ${o.ws.closeFrame ? `close ${o.ws.closeCode ?? "none"}` : o.peerClosed ? "dropped" : "open"}`
  if (o.status !== undefined) return o.relayError === undefined ? String(o.status) : `${o.status} ${o.relayError}`
  if (o.peerClosed) return o.error !== undefined ? `reset (${o.error})` : "closed without answer"
  return "no answer"
}
