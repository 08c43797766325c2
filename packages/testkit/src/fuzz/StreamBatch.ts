/**
 * Generator 5's inputs run, and what their clients got held to the books at the end of the batch:
 * - a client of the well-behaved host gets its whole answer (200, every byte), always;
 * - a client of the evil host that got a complete answer from the host got exactly the bytes the
 *   host sent on its stream before End, on a stream where no rule was broken; a broken stream's
 *   client gets a failure (a 502 or a cut connection), never a short body passed off as complete;
 * - and it gets it promptly: its answer ends within a few seconds of the stream being over;
 * - a client WebSocket through the evil host gets the messages sent on its channel, in order;
 * - a host of a `Hello` input (hostile windows announced) answers its client whole, and the relay
 *   breaks no rule toward it.
 */
import { createHash } from "node:crypto"
import * as http from "node:http"
import WebSocket from "ws"
import { anomaly, type RunState } from "./FuzzBatch.js"
import { bodyOf, messageDigest } from "./StreamBooks.js"
import { type GoodV2Host, startGoodV2Host } from "./StreamHosts.js"
import type { StreamInput } from "./StreamInputs.js"
import { channelOutcome } from "./ChannelOutcome.js"

export interface StreamAnswer {
  readonly status: number
  /** The `x-fuzz-stream` header: the evil host's honest heads name their stream. */
  readonly stream: string | undefined
  /** The response ended as HTTP says a response ends (not cut). */
  readonly complete: boolean
  readonly bytes: number
  readonly digest: string
  readonly error: string | undefined
  /** The client went away on purpose (`abortAfterMs`) before the end. */
  readonly wentAway: boolean
  /** When the client saw the end of it. */
  readonly at: number
}

/** A request through the relay, read to its end or its cut. */
export const streamRequest = (
  url: string,
  options: {
    readonly method: string
    readonly token: string
    readonly body: Buffer
    readonly chunked?: boolean
    readonly keepAlive?: boolean
    /** The client goes away after this long (its answer is then `wentAway`). */
    readonly abortAfterMs?: number | undefined
    /** The client reads nothing for this long once the head came. */
    readonly pauseMs?: number | undefined
    readonly timeoutMs: number
  }
) =>
  new Promise<StreamAnswer>((resolve) => {
    const hash = createHash("sha256")
    let bytes = 0
    let done = false
    const agent = options.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false
    const finish = (answer: Omit<StreamAnswer, "at" | "digest" | "bytes" | "wentAway">, wentAway = false) => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (agent) agent.destroy()
      resolve({ ...answer, wentAway, bytes, digest: hash.digest("hex"), at: Date.now() })
    }
    const headers: Record<string, string | number> = { authorization: `Bearer ${options.token}` }
    if (options.body.length > 0 && !options.chunked) headers["content-length"] = options.body.length
    const req = http.request(url, { method: options.method, agent, headers }, (res) => {
      const stream = res.headers["x-fuzz-stream"]
      const answer = (error: string | undefined) => ({ status: res.statusCode ?? 0, stream: typeof stream === "string" ? stream : undefined, complete: res.complete && error === undefined, error })
      res.on("data", (c: Buffer) => {
        // (A paused client's bytes may come after it gave up.)
        if (done) return
        bytes += c.length
        hash.update(c)
      })
      if (options.pauseMs !== undefined) {
        res.pause()
        setTimeout(() => res.resume(), options.pauseMs)
      }
      res.on("error", (e) => finish(answer(e.message)))
      res.on("close", () => finish(answer(res.complete ? undefined : "cut")))
    })
    const timer = setTimeout(() => {
      finish({ status: 0, stream: undefined, complete: false, error: `no end within ${options.timeoutMs} ms` })
      req.destroy()
    }, options.timeoutMs)
    req.on("error", (e) => finish({ status: 0, stream: undefined, complete: false, error: e.message }))
    if (options.abortAfterMs !== undefined) {
      setTimeout(() => {
        finish({ status: 0, stream: undefined, complete: false, error: "went away" }, true)
        req.destroy()
      }, options.abortAfterMs)
    }
    if (options.body.length > 0) req.write(options.body)
    req.end()
  })

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex")

export interface StreamTraffic {
  readonly evil: Array<{ readonly nonce: string; readonly where: string; readonly answer: Promise<StreamAnswer> }>
  readonly good: Array<{ readonly where: string; readonly size: number; readonly digest: string; readonly answer: Promise<StreamAnswer> }>
  readonly sockets: Array<{ readonly ws: WebSocket; readonly nonce: string; readonly where: string; readonly got: Array<string> }>
  /** The hosts of `Hello` inputs: stopped at the end of the batch. */
  readonly hosts: Array<GoodV2Host>
}

export const streamTraffic = (): StreamTraffic => ({ evil: [], good: [], sockets: [], hosts: [] })

export const runStreamInput = async (state: RunState, input: StreamInput, where: string, traffic: StreamTraffic): Promise<string> => {
  const timeoutMs = state.requestTimeoutMs + 8000
  switch (input._tag) {
    case "Request": {
      const nonce = where.replace(/[^a-z0-9]/gi, "-")
      const answer = streamRequest(`${state.relay.http}/hosts/fuzz:evil2/r/${nonce}`, {
        method: input.method,
        token: state.tokens.valid,
        body: input.body,
        keepAlive: input.keepAlive,
        abortAfterMs: input.abortAfterMs,
        pauseMs: input.pauseMs,
        timeoutMs
      })
      traffic.evil.push({ nonce, where, answer })
      return "client request"
    }
    case "Good": {
      const nonce = where.replace(/[^a-z0-9]/gi, "-")
      const path = input.method === "GET" ? `/g/${nonce}/${input.size}` : `/e/${nonce}`
      const answer = streamRequest(`${state.relay.http}/hosts/fuzz:good2${path}${input.chunked ? "?chunked" : ""}`, {
        method: input.method,
        token: state.tokens.valid,
        body: input.body,
        chunked: input.chunked,
        timeoutMs
      })
      traffic.good.push({ where, size: input.size, digest: sha256(input.method === "GET" ? bodyOf(nonce, input.size) : input.body), answer })
      return "good request"
    }
    case "Hello": {
      const nonce = where.replace(/[^a-z0-9]/gi, "-")
      const hostId = `fuzz:w-${nonce}`
      let host: GoodV2Host
      try {
        host = await startGoodV2Host(state.relay.ws, hostId, state.tokens.valid, input.header)
      } catch (e) {
        state.failures.push(`${where}: a version 2 host announcing windows ${JSON.stringify(input.header).slice(0, 100)} could not register: ${e instanceof Error ? e.message : String(e)}`)
        return "hello: refused"
      }
      traffic.hosts.push(host)
      const path = input.method === "GET" ? `/g/${nonce}/${input.size}` : `/e/${nonce}`
      const answer = streamRequest(`${state.relay.http}/hosts/${hostId}${path}`, { method: input.method, token: state.tokens.valid, body: input.body, timeoutMs })
      traffic.good.push({ where, size: input.size, digest: sha256(input.method === "GET" ? bodyOf(nonce, input.size) : input.body), answer })
      return "hello: host registered"
    }
    case "Channel": {
      const nonce = where.replace(/[^a-z0-9]/gi, "-")
      const ws = new WebSocket(`${state.relay.ws}/hosts/fuzz:evil2/ws/${nonce}`, { headers: { authorization: `Bearer ${state.tokens.valid}` }, perMessageDeflate: false })
      const got: Array<string> = []
      ws.on("error", () => {})
      ws.on("message", (data, isBinary) => got.push(messageDigest(Buffer.isBuffer(data) ? data : Buffer.concat(data as Array<Buffer>), !isBinary)))
      traffic.sockets.push({ ws, nonce, where, got })
      return await channelOutcome(ws)
    }
    case "Targeted": {
      const nonce = where.replace(/[^a-z0-9]/gi, "-")
      state.evil2.books.reserve(nonce)
      const answer = streamRequest(`${state.relay.http}/hosts/fuzz:evil2/r/${nonce}`, { method: "GET", token: state.tokens.valid, body: Buffer.alloc(0), keepAlive: input.keepAlive, timeoutMs })
      traffic.evil.push({ nonce, where, answer })
      for (let i = 0; i < 200 && state.evil2.books.byNonce(nonce) === undefined; i++) await new Promise((r) => setTimeout(r, 5))
      const e = state.evil2.books.byNonce(nonce)
      if (e === undefined) return "targeted: the request did not reach the host"
      state.trace(`${where} sent: ${input.act(state.evil2.books, e)}`)
      return input.note
    }
    case "Act": {
      if (!state.evil2.open()) return "evil2 tunnel gone"
      // A request takes a moment to reach the host: an act waits a little for a stream to act on.
      for (let i = 0; i < 20 && state.evil2.books.pick("any", 0) === undefined; i++) await new Promise((r) => setTimeout(r, 10))
      const detail = input.act(state.evil2.books)
      state.trace(`${where} sent: ${detail}`)
      return input.note
    }
  }
}

/** How long after its stream was over a client may still be waiting for the end of its answer. */
const promptMs = 2500

/** The end of a batch: every stream of the evil host answered in full or given up; every client held to its book. */
export const settleStreams = async (state: RunState, traffic: StreamTraffic, tally: (label: string) => void) => {
  const books = state.evil2.books
  const started = Date.now()
  const answers = [...traffic.evil.map((r) => r.answer), ...traffic.good.map((r) => r.answer)]
  let settled = false
  const all = Promise.all(answers).then(() => (settled = true))
  let gaveUp = false
  while (!settled && Date.now() - started < state.requestTimeoutMs + 9000) {
    if (state.evil2.open()) {
      books.finishAll()
      // Streams that could not finish within credit by now (the relay stopped granting: a client
      // it cut, a grant this host could not see) are given up: the host resets them.
      if (!gaveUp && Date.now() - started > 1500) {
        gaveUp = true
        books.giveUp()
      }
    }
    await Promise.race([all, new Promise((r) => setTimeout(r, 100))])
  }
  const failures = state.failures

  for (const { where, size, digest, answer } of traffic.good) {
    const got = await answer
    tally(`good: ${got.complete ? got.status : got.error ?? "cut"}`)
    if (got.status !== 200 || !got.complete || got.digest !== digest || got.bytes !== size) {
      failures.push(`${where}: a request through the well-behaved version 2 host got ${got.status} ${got.complete ? "complete" : `not complete (${got.error})`} with ${got.bytes} of ${size} B${got.digest === digest ? "" : ", other bytes"}`)
    }
  }

  for (const { nonce, where, answer } of traffic.evil) {
    const got = await answer
    const e = books.byNonce(nonce)
    if (got.wentAway) {
      tally("evil: client went away")
      continue
    }
    if (got.status === 0 && got.error?.startsWith("no end")) {
      failures.push(`${where}: a client of the evil version 2 host got no end of its answer (${got.error}); its stream: ${describe(e)}`)
      continue
    }
    state.trace(`${where} client got ${got.status} ${got.complete ? "complete" : got.error} ${got.bytes} B; its stream: ${describe(e)}`)
    const fromHost = e?.head !== undefined && got.status === e.head.status && got.status !== 502 && got.status !== 503 && got.status !== 504
    tally(`evil: ${fromHost ? "host's " : ""}${got.status}${got.complete ? "" : " cut"}${e?.broken !== undefined ? " (broken)" : ""}`)
    if (e === undefined) {
      if (fromHost || got.stream !== undefined) failures.push(`${where}: a client got a host's answer (${got.status}, stream ${got.stream}) for a request the host never saw`)
      continue
    }
    if (got.stream !== undefined && got.stream !== String(e.id)) {
      failures.push(`${where}: a client of stream ${e.id} got the answer of stream ${got.stream}`)
      continue
    }
    if (got.complete && fromHost) {
      const bodiless = got.status === 204 || got.status === 304
      // A declared length reached within the rules is a whole answer, whatever came after.
      const wholeByLength = e.lengthDigest !== undefined && got.digest === e.lengthDigest && got.bytes === e.head!.length
      if (wholeByLength) tally("evil: whole by its declared length")
      else if (e.broken !== undefined) failures.push(`${where}: a broken stream's client got a complete ${got.status} of ${got.bytes} B; the stream: ${describe(e)}`)
      else if (e.digest === undefined) failures.push(`${where}: a client got a complete ${got.status} of ${got.bytes} B before the host ended its stream; the stream: ${describe(e)}`)
      else if (!bodiless && (got.digest !== e.digest || got.bytes !== e.sent)) failures.push(`${where}: a client got a complete ${got.status} of ${got.bytes} B, not the ${e.sent} B the host sent; the stream: ${describe(e)}`)
    } else if (!got.complete && e.digest !== undefined && e.broken === undefined && e.taints.length === 0) {
      anomaly(state, `${where}: a stream the host completed within the rules was cut for its client (${got.error}); the stream: ${describe(e)}`)
    }
    if (e.overAt !== undefined && got.at - e.overAt > promptMs) {
      failures.push(`${where}: a client's answer ended ${got.at - e.overAt} ms after its stream was over (${got.status}, ${got.complete ? "complete" : got.error}); the stream: ${describe(e)}`)
    }
  }
  books.forget(traffic.evil.map((r) => r.nonce))
  for (const host of traffic.hosts) {
    host.stop()
    const { problems } = host.counts()
    if (problems > 0) failures.push(`the relay broke version 2's rules ${problems} times toward a well-behaved host that announced hostile windows`)
  }
  // A channel's client gets the messages the host sent on that channel, in order (the last may still be on their way).
  for (const { ws, nonce, where, got } of traffic.sockets) {
    ws.terminate()
    const e = books.byNonce(nonce)
    if (e === undefined) continue
    tally(`channel: ${got.length === 0 ? "no" : "some"} messages`)
    const sent = e.messages
    if (sent.length < 500 && (got.length > sent.length || got.some((m, i) => m !== sent[i]))) {
      failures.push(`${where}: a channel's client got messages other than those its host sent on it, in order (${got.length} got, ${sent.length} sent)`)
    }
  }
  books.forget(traffic.sockets.map((s) => s.nonce))
}

const describe = (e: ReturnType<RunState["evil2"]["books"]["byNonce"]>) =>
  e === undefined
    ? "never opened"
    : `stream ${e.id} ${e.method}, head ${e.head ? `${e.head.status}${e.head.length === undefined ? "" : ` length ${e.head.length}`}` : "none"}, ${e.sent} B sent, ${e.over ?? "not over"}${e.relayReset === undefined ? "" : `, reset by the relay (${e.relayReset})`}${e.taints.length ? `, taints: ${e.taints.slice(0, 3).join("; ")}` : ""}`
