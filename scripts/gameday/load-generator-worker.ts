/**
 * The load generator of `npm run gameday`, in its own process so that the
 * orchestrator's work (relay logs, Redis checks) cannot delay it. It behaves
 * like a plain load balancer in front of the relays (one or two), which does
 * not watch `/ready`:
 * - a steady rate of GET requests, every host in turn (host k mod N), the
 *   relays alternating so each host is reached through both;
 * - keep-alive connections to each relay (an LB keeps its connections);
 * - a GET is idempotent, so when the connection was refused (a relay that
 *   stopped listening) or reset/closed before any byte of the response came,
 *   it is sent once more to the other relay, as Envoy's retry on
 *   `reset,connect-failure` and Go's HTTP transport do; counted as
 *   `refusedRetried` and `resetRetried` (with one relay there is no other:
 *   no retry);
 * - every other failure is a failed request: a non-2xx answer, an error after
 *   the response began, or no answer within the timeout.
 *
 * It also keeps when each attempt to each relay started and ended, so that
 * the requests in flight to a relay at the moment it was signalled
 * (`inFlightAtSignal`) can be counted afterwards.
 *
 * While measuring it also tracks, per host, the longest time without a
 * successful response (from one success to the next, by completion time).
 *
 * Driven over IPC (see `messages.ts`): "configure", "run", "measure", "end".
 */
import * as http from "node:http"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { percentile } from "../lib/bench.js"
import type { FailedRequest, LoadCommand, LoadEvent, RelaySignal } from "./messages.js"

const send = (event: LoadEvent) => {
  if (process.connected) process.send!(event)
}
process.on("disconnect", () => process.exit(0))

/** Failures kept in full for the report (the counts are always complete). */
const maxFailuresKept = 20_000

let config: Extract<LoadCommand, { type: "configure" }> | undefined
let agents: Array<http.Agent> = []
let authorization = ""

let running = false
let ticker: NodeJS.Timeout | undefined
let startedAt = 0
let issued = 0
let inFlight = 0
let onIdle: (() => void) | undefined

let measuring = false
let measuredFrom = 0
let requests = 0
let succeeded = 0
let failedRequests = 0
let refusedRetried = 0
let resetRetried = 0
/** Every attempt while measuring (first tries and retries): relay index, start, end (Date.now()). */
let attempts: { relay: Array<number>; start: Array<number>; end: Array<number> } = { relay: [], start: [], end: [] }
let failures: Array<FailedRequest> = []
let failuresDropped = 0
let slow: Array<FailedRequest> = []
let slowDropped = 0
let latencies: Array<number> = []
let maxLagMs = 0
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
loopDelay.enable()
/** Completion time of each host's last successful response (kept across rounds as the anchor). */
const lastSuccess = new Map<string, number>()
let longestGap = new Map<string, number>()

type Outcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly retry: "refused" | "reset" | undefined; readonly kind: string }

/** Errors of a connection that ended before any response byte: the request may be sent again (it is a GET). */
const resetCodes = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED"])

/** One GET through one relay; never rejects. */
const attempt = (relay: number, hostId: string): Promise<Outcome> =>
  new Promise((resolve) => {
    let settled = false
    let responded = false
    // This round's log (a new one starts with each measurement).
    const log = measuring ? attempts : undefined
    const index = log ? log.relay.push(relay) - 1 : -1
    log?.start.push(Date.now())
    const settle = (outcome: Outcome) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (log) log.end[index] = Date.now()
      resolve(outcome)
    }
    const req = http.request(`${config!.relayUrls[relay]}/hosts/${hostId}/gameday`, {
      agent: agents[relay],
      headers: { authorization }
    })
    const timer = setTimeout(() => {
      settle({ ok: false, retry: undefined, kind: "timeout" })
      req.destroy()
    }, config!.timeoutMs)
    req.on("response", (res) => {
      responded = true
      if (res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300) {
        res.resume()
        res.on("end", () => settle({ ok: true }))
        res.on("error", (e: NodeJS.ErrnoException) => settle({ ok: false, retry: undefined, kind: `body ${e.code ?? e.message}` }))
        return
      }
      // A relay's error body is `{"error": code, ...}`: keep the code, it says which failure it was.
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      const done = () => {
        let code = ""
        try {
          code = String(JSON.parse(Buffer.concat(chunks).toString("utf8")).error ?? "")
        } catch {
          // not a relay error body
        }
        settle({ ok: false, retry: undefined, kind: `http ${res.statusCode}${code ? ` ${code}` : ""}` })
      }
      res.on("end", done)
      res.on("error", done)
    })
    req.on("error", (e: NodeJS.ErrnoException) => {
      const code = e.code ?? e.message
      const retry = responded ? undefined : code === "ECONNREFUSED" ? "refused" : resetCodes.has(code) ? "reset" : undefined
      settle({ ok: false, retry, kind: code })
    })
    req.end()
  })

const request = async (k: number) => {
  const hostIds = config!.hostIds
  const hostId = hostIds[k % hostIds.length]!
  const relays = config!.relayUrls.length
  // Relays alternate per request, shifted by one on every pass over the hosts.
  const first = (k + Math.floor(k / hostIds.length)) % relays
  const counted = measuring
  const sentAt = Date.now()
  if (counted) requests++
  inFlight++
  let relay = first
  let retried = false
  let outcome = await attempt(relay, hostId)
  if (!outcome.ok && outcome.retry !== undefined && relays > 1) {
    // What a load balancer does with an idempotent request that never reached a backend's
    // answer: the other backend, once.
    retried = true
    if (counted) {
      if (outcome.retry === "refused") refusedRetried++
      else resetRetried++
    }
    relay = (first + 1) % relays
    outcome = await attempt(relay, hostId)
  }
  const doneAt = Date.now()
  inFlight--
  if (outcome.ok) {
    const previous = lastSuccess.get(hostId)
    if (measuring && (previous === undefined || doneAt > previous)) {
      const gap = doneAt - (previous ?? measuredFrom)
      if (gap > (longestGap.get(hostId) ?? 0)) longestGap.set(hostId, gap)
    }
    if (previous === undefined || doneAt > previous) lastSuccess.set(hostId, doneAt)
  }
  if (counted) {
    if (outcome.ok) {
      succeeded++
      const latency = doneAt - sentAt
      latencies.push(latency)
      if (latency > 1_000) {
        const kind = latency > 5_000 ? "over 5 s" : latency > 2_000 ? "2-5 s" : "1-2 s"
        if (slow.length < maxFailuresKept) slow.push({ hostId, relay, kind, sentAt, doneAt, retried })
        else slowDropped++
      }
    } else {
      failedRequests++
      if (failures.length < maxFailuresKept) {
        failures.push({ hostId, relay, kind: outcome.kind, sentAt, doneAt, retried })
      } else failuresDropped++
    }
  }
  if (inFlight === 0 && onIdle) onIdle()
}

const tick = () => {
  const now = Date.now()
  const due = Math.floor(((now - startedAt) * config!.rate) / 1000)
  if (due - issued > 1 && measuring) {
    // The oldest request not yet sent was due this long ago.
    maxLagMs = Math.max(maxLagMs, now - (startedAt + (issued * 1000) / config!.rate))
  }
  while (issued < due) void request(issued++)
}

const run = () => {
  if (running) return
  running = true
  // Continue the sequence where the last run stopped, so hosts keep their turn.
  startedAt = Date.now() - (issued * 1000) / config!.rate
  ticker = setInterval(tick, 2)
}

const measure = () => {
  measuring = true
  measuredFrom = Date.now()
  requests = succeeded = failedRequests = refusedRetried = resetRetried = failuresDropped = 0
  attempts = { relay: [], start: [], end: [] }
  failures = []
  slow = []
  slowDropped = 0
  latencies = []
  maxLagMs = 0
  loopDelay.reset()
  longestGap = new Map()
}

/** Attempts to `signal.relay` started before `signal.at` and not ended by then. */
const inFlightAt = (signal: RelaySignal) => {
  let n = 0
  for (let i = 0; i < attempts.relay.length; i++) {
    if (attempts.relay[i] === signal.relay && attempts.start[i]! <= signal.at && (attempts.end[i] ?? Infinity) > signal.at) n++
  }
  return n
}

const end = async (signals: ReadonlyArray<RelaySignal>) => {
  running = false
  if (ticker) clearInterval(ticker)
  const measuredTo = Date.now()
  if (inFlight > 0) await new Promise<void>((resolve) => (onIdle = resolve))
  onIdle = undefined
  measuring = false
  // A host with no success since its last one counts up to the end of the measurement.
  const longestGapMs: Record<string, number> = {}
  for (const hostId of config!.hostIds) {
    const last = lastSuccess.get(hostId)
    const open = measuredTo - Math.max(last ?? measuredFrom, measuredFrom)
    longestGapMs[hostId] = Math.max(longestGap.get(hostId) ?? 0, open)
  }
  send({
    type: "report",
    measuredFrom,
    measuredTo,
    requests,
    succeeded,
    failedRequests,
    refusedRetried,
    resetRetried,
    inFlightAtSignal: signals.map(inFlightAt),
    failures,
    failuresDropped,
    slow,
    slowDropped,
    longestGapMs,
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.reduce((a, b) => Math.max(a, b), 0) },
    maxLagMs,
    eventLoopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 }
  })
}

process.on("message", (message) => {
  const command = message as LoadCommand
  try {
    switch (command.type) {
      case "configure":
        // Again before each round: the relays in front of which it stands may change (single-relay).
        if (running) throw new Error("configure while running")
        for (const agent of agents) agent.destroy()
        config = command
        authorization = `Bearer ${command.token}`
        // As many connections as the load needs (no pool limit: a queue in front of a slow relay
        // would turn its slowness into timeouts of the generator's own making); kept between
        // requests, and an idle one closed after 4 s. The relay keeps an idle connection for 75 s
        // (its HTTP server's keepAliveTimeout), so the generator always closes first, as a load
        // balancer's idle timeout sits below its backends' keep-alive timeout: it never sends a
        // request on a connection the backend is closing at that moment.
        agents = command.relayUrls.map(() => new http.Agent({ keepAlive: true, maxFreeSockets: 1024, timeout: 4_000 }))
        send({ type: "configured" })
        return
      case "run":
        run()
        send({ type: "running" })
        return
      case "measure":
        measure()
        send({ type: "measuring", at: measuredFrom })
        return
      case "end":
        void end(command.signals)
        return
    }
  } catch (e) {
    send({ type: "error", message: String(e) })
  }
})
