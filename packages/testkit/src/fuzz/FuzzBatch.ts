/**
 * A batch of a fuzz run: its inputs planned from the seed, run with a bounded number in progress,
 * each outcome tallied; then every client request sent through the evil host is seen to its end.
 * Batch `b` of seed `s` is planned from `prng(s).fork(b)` alone: the same seed plans the same
 * inputs, whatever the relay answered to the batches before. (Which request a tunnel frame names
 * is picked among those in flight when it is sent: the pick is seeded, what is in flight is not.)
 */
import * as http from "node:http"
import WebSocket from "ws"
import type { RelayProcess } from "../RelayProcess.js"
import { clientWsInput } from "./ClientFrames.js"
import { evilBody, type EvilHost } from "./FuzzHosts.js"
import type { FuzzTokens } from "./FuzzTokens.js"
import { httpInput } from "./HttpRequests.js"
import { type GenOptions, genOptions } from "./KnownBugs.js"
import type { Prng } from "./Prng.js"
import { exchange, outcomeLabel } from "./RawTcp.js"
import { runStreamInput, settleStreams, streamTraffic } from "./StreamBatch.js"
import type { EvilV2Host } from "./StreamHosts.js"
import { foundStreamInputs, type StreamInput, streamInput } from "./StreamInputs.js"
import { type TunnelInput, tunnelInput } from "./TunnelFrames.js"
import { type RawInput, upgradeInput } from "./Upgrades.js"
import { channelOutcome } from "./ChannelOutcome.js"

export type FuzzKind = "tunnel" | "upgrade" | "http" | "clientWs" | "stream"
export const fuzzKinds: ReadonlyArray<FuzzKind> = ["tunnel", "upgrade", "http", "clientWs", "stream"]
/** The kinds of protocol version 1's fuzz (the relay's tunnels, upgrades, HTTP and client WebSockets). */
export const v1Kinds: ReadonlyArray<FuzzKind> = ["tunnel", "upgrade", "http", "clientWs"]

const weights: ReadonlyArray<readonly [FuzzKind, number]> = [["tunnel", 45], ["upgrade", 20], ["http", 22], ["clientWs", 13], ["stream", 45]]

export type Planned =
  | { readonly kind: "tunnel"; readonly input: TunnelInput }
  | { readonly kind: "stream"; readonly input: StreamInput }
  | { readonly kind: "upgrade" | "http" | "clientWs"; readonly make: (tokens: FuzzTokens) => RawInput }

/**
 * Batch `batch`'s inputs, from the run's seed alone, of the kinds asked for (each as likely as its
 * weight among them: leaving kinds out does not change how the others are picked).
 */
export const planBatch = (root: Prng, batch: number, size: number, gen: GenOptions = genOptions(false), kinds: ReadonlyArray<FuzzKind> = fuzzKinds): Array<Planned> => {
  const r = root.fork(batch)
  const chosen = weights.filter(([kind]) => kinds.includes(kind))
  // The inputs that found bugs open every run.
  const found: Array<Planned> = batch === 0 && kinds.includes("stream") ? foundStreamInputs.map((input) => ({ kind: "stream", input })) : []
  return [...found, ...planned(r, chosen, size, gen)].slice(0, Math.max(size, found.length))
}

const planned = (r: Prng, chosen: ReadonlyArray<readonly [FuzzKind, number]>, size: number, gen: GenOptions): Array<Planned> => {
  return Array.from({ length: size }, (_, i): Planned => {
    const ir = r.fork(i)
    const kind = ir.weighted(chosen)
    switch (kind) {
      case "stream":
        return { kind, input: streamInput(ir) }
      case "tunnel":
        return { kind, input: tunnelInput(ir, gen) }
      case "upgrade":
        return { kind, make: upgradeInput(ir, gen) }
      case "http":
        return { kind, make: httpInput(ir) }
      case "clientWs":
        return { kind, make: clientWsInput(ir) }
    }
  })
}

// --- Client requests

export interface Answer {
  readonly status: number
  readonly body: string
}

/** A request through the relay; the answer, or an error message (a timeout among them). */
export const request = (url: string, options: { readonly method?: string; readonly token: string; readonly body?: Buffer; readonly timeoutMs: number }) =>
  new Promise<Answer | { readonly error: string }>((resolve) => {
    // The relay passes response heads up to 64 KiB (MAX_RESPONSE_HEADER_BYTES), Node's client reads 16 KiB by default.
    const req = http.request(url, { method: options.method ?? "GET", agent: false, maxHeaderSize: 256 * 1024, headers: { authorization: `Bearer ${options.token}`, ...(options.body ? { "content-length": options.body.length } : {}) } }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => {
        clearTimeout(timer)
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() })
      })
      res.on("error", (e) => {
        clearTimeout(timer)
        resolve({ error: `${e.message} after a ${res.statusCode} head (${JSON.stringify(res.headers).slice(0, 300)}) and ${chunks.reduce((n, c) => n + c.length, 0)} body bytes` })
      })
    })
    const timer = setTimeout(() => {
      req.destroy()
      resolve({ error: `no answer within ${options.timeoutMs} ms` })
    }, options.timeoutMs)
    req.on("error", (e) => {
      clearTimeout(timer)
      resolve({ error: e.message })
    })
    req.end(options.body)
  })

// --- Running a batch

/** What the batches of one run share. */
export interface RunState {
  readonly relay: RelayProcess
  readonly tokens: FuzzTokens
  readonly evil: EvilHost
  readonly evil2: EvilV2Host
  readonly requestTimeoutMs: number
  readonly outcomes: Record<FuzzKind, Record<string, number>>
  readonly anomalies: Array<string>
  readonly failures: Array<string>
  anomalyCount: number
  /** The last frames sent by the evil host, for a close the relay gives it. */
  readonly recentFrames: Array<string>
  readonly trace: (line: string) => void
}

const tally = (state: RunState, kind: FuzzKind, label: string) => {
  const counts = state.outcomes[kind]
  counts[label] = (counts[label] ?? 0) + 1
}

export const anomaly = (state: RunState, text: string) => {
  state.anomalyCount++
  if (state.anomalies.length < 50) state.anomalies.push(text)
}

export const relayGone = (relay: RelayProcess) => relay.child.exitCode !== null || relay.child.signalCode !== null

/** Runs `tasks` with at most `n` at once, in order of start. */
const pool = async (tasks: ReadonlyArray<() => Promise<void>>, n: number) => {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, async () => {
    while (next < tasks.length) await tasks[next++]!()
  }))
}

interface EvilTraffic {
  readonly requests: Array<{ readonly nonce: string; readonly where: string; readonly answer: Promise<Answer | { readonly error: string }> }>
  readonly sockets: Array<WebSocket>
}

const runTunnelInput = async (state: RunState, input: TunnelInput, where: string, traffic: EvilTraffic): Promise<string> => {
  switch (input._tag) {
    case "Request": {
      const nonce = where.replace(/[^a-z0-9]/gi, "-")
      const answer = request(`${state.relay.http}/hosts/fuzz:evil/r/${nonce}`, {
        method: input.method,
        token: state.tokens.valid,
        ...(input.body.length > 0 ? { body: input.body } : {}),
        timeoutMs: state.requestTimeoutMs + 5000
      })
      traffic.requests.push({ nonce, where, answer })
      return "client request"
    }
    case "Channel": {
      const ws = new WebSocket(`${state.relay.ws}/hosts/fuzz:evil/ws/${encodeURIComponent(where)}`, { headers: { authorization: `Bearer ${state.tokens.valid}` }, perMessageDeflate: false })
      ws.on("error", () => {})
      traffic.sockets.push(ws)
      return await channelOutcome(ws)
    }
    case "Respond": {
      const id = await state.evil.respond(input.u, input.status, input.headers, input.base64, input.twice)
      return id === undefined ? "respond: none in flight" : "valid response"
    }
    case "Frame": {
      const built = input.build(state.evil.ids)
      state.recentFrames.push(`${where} ${input.note}${built.detail ? ` (${built.detail})` : ""}`)
      state.trace(`${where} sends ${built.binary ? "binary" : "text"} ${built.data.length} B: ${built.data.slice(0, 300).toString()}`)
      if (state.recentFrames.length > 5) state.recentFrames.shift()
      await state.evil.send(built)
      return input.note
    }
  }
}

const runRawInput = async (state: RunState, kind: FuzzKind, input: RawInput, where: string): Promise<string> => {
  const outcome = await exchange(state.relay.port, input.plan)
  const label = outcomeLabel(outcome)
  if (input.plan.owed && outcome.status === undefined && !outcome.peerClosed) {
    anomaly(state, `${where} ${kind}: no answer within ${input.plan.holdMs} ms to ${input.note}`)
  }
  return label
}

/** One batch's inputs, then what the evil host's clients got. */
export const runBatch = async (state: RunState, plans: ReadonlyArray<Planned>, batch: number, concurrency: number) => {
  const traffic: EvilTraffic = { requests: [], sockets: [] }
  const streams = streamTraffic()
  const tasks = plans.map((planned, i) => async () => {
    const where = `b${batch}#${i}`
    // A relay that died is reported by the checks; what is left of the batch is not sent.
    if (relayGone(state.relay)) return
    try {
      let label: string
      if (planned.kind === "tunnel") {
        state.trace(`${where} tunnel ${planned.input.note}`)
        label = await runTunnelInput(state, planned.input, where, traffic)
      } else if (planned.kind === "stream") {
        state.trace(`${where} stream ${planned.input.note}`)
        label = await runStreamInput(state, planned.input, where, streams)
      } else {
        const input = planned.make(state.tokens)
        state.trace(`${where} ${planned.kind} ${input.note}`)
        label = await runRawInput(state, planned.kind, input, where)
      }
      state.trace(`${where} -> ${label}`)
      tally(state, planned.kind, label)
    } catch (e) {
      // A bug of the fuzz itself: it fails the run too, said as such.
      if (!relayGone(state.relay)) state.failures.push(`${where} ${planned.kind}: the fuzz's own code threw: ${e instanceof Error ? e.stack : String(e)}`)
    }
  })
  await pool(tasks, concurrency)
  await Promise.all([settleTunnel(state, traffic), settleStreams(state, streams, (label) => tally(state, "stream", label))])
}

/** Every client request through the evil host ends: answered by it now, by a bad frame, or by the relay's timeout. */
const settleTunnel = async (state: RunState, traffic: EvilTraffic) => {
  const deadline = Date.now() + state.requestTimeoutMs + 5000
  let settled = false
  const all = Promise.all(traffic.requests.map((r) => r.answer)).then(() => (settled = true))
  while (!settled && Date.now() < deadline) {
    state.evil.answerAll()
    await Promise.race([all, new Promise((r) => setTimeout(r, 100))])
  }
  for (const { nonce, where, answer } of traffic.requests) {
    const got = await answer
    if ("error" in got) {
      if (!relayGone(state.relay)) state.failures.push(`${where}: a client request through the evil host got no answer (${got.error})`)
      continue
    }
    tally(state, "tunnel", `client got ${got.status}`)
    if (got.body.startsWith("resp:") && got.body !== evilBody(nonce)) {
      state.failures.push(`${where}: a client got another request's answer (${got.body.slice(0, 80)})`)
    }
  }
  for (const ws of traffic.sockets) ws.terminate()
}
