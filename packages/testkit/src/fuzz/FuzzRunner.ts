/**
 * A fuzz run: a relay process, three version 1 hosts of org `fuzz` (`fuzz:good` answering the
 * known-good request, `fuzz:h` answering and echoing, `fuzz:evil` sending hostile frames) and two
 * version 2 hosts (`fuzz:good2` well-behaved, `fuzz:evil2` sending hostile binary frames and
 * control messages, `StreamHosts.ts`), then batches of seeded inputs from the generators asked for
 * until the time is up. After each batch: the relay still runs, answers the known-good request
 * with the right body in time, its RSS stays under the bound, it logged no error and no defect,
 * every client request through the version 1 evil host got an answer that was its own, every
 * client of the version 2 hosts got what their books allow (`StreamBatch.ts`), and neither
 * version 2 tunnel was closed. At the end: `bad_frame` counts at least every rule the version 2
 * evil host broke, the relay's lines about that host stayed within their rate limit, and on
 * SIGINT the relay must drain and exit 0.
 *
 * The same seed replays every batch's inputs (what the relay answers, and when, is its own).
 */
import { Effect, type Scope } from "effect"
import { fakeHost, okResponse } from "../FakeHost.js"
import { messageOf, type RelayProcess } from "../RelayProcess.js"
import { testSecret } from "../Tokens.js"
import { anomaly, type FuzzKind, fuzzKinds, planBatch, runBatch, type RunState } from "./FuzzBatch.js"
import { checkRelay, goodBody, isFailureLine, limitHits, outputTail } from "./FuzzChecks.js"
import { echoHost, evilHost } from "./FuzzHosts.js"
import { evilV2Host, goodV2Host } from "./StreamHosts.js"
import { rssMB, startQuietRelay } from "./FuzzRelay.js"
import { fuzzTokens } from "./FuzzTokens.js"
import { genOptions } from "./KnownBugs.js"
import { prng } from "./Prng.js"

export { type FuzzKind, fuzzKinds, planBatch, v1Kinds } from "./FuzzBatch.js"

export interface FuzzOptions {
  /** Batches start until this many seconds have passed since the first (the last one finishes). */
  readonly seconds: number
  readonly seed: number
  /** Inputs per batch. */
  readonly batchSize?: number
  /** Inputs in progress at once. */
  readonly concurrency?: number
  /** The relay's RSS may grow this much over its size before the first batch. */
  readonly rssHeadroomMB?: number
  /** The known-good request must be answered within this. */
  readonly goodTimeoutMs?: number
  /** Added to (or overriding) the relay's environment. */
  readonly env?: Record<string, string>
  /** Progress lines (one per batch). */
  readonly log?: (line: string) => void
  /** The generators to run (default: all five). */
  readonly kinds?: ReadonlyArray<FuzzKind>
  /** Include the inputs of bugs still open (KnownBugs.ts); without it they are left out. */
  readonly knownBugs?: boolean
  /** Called as each input starts, with where it is (`b3#17`), its kind and what it is: to find the input behind a failure. */
  readonly trace?: (line: string) => void
  /** Called after each batch's inputs, before its checks: a test breaks the relay here to see the run notice. */
  readonly beforeChecks?: (relay: RelayProcess, batch: number) => void
}

export interface BatchReport {
  readonly batch: number
  readonly inputs: number
  readonly ms: number
  /** The known-good request: its status (0: no answer) and time. */
  readonly good: { readonly status: number; readonly ms: number; readonly ok: boolean }
  readonly rssMB: number
}

export interface FuzzReport {
  readonly seed: number
  readonly seconds: number
  readonly batchSize: number
  readonly concurrency: number
  readonly env: Record<string, string>
  readonly batches: ReadonlyArray<BatchReport>
  readonly inputs: Record<FuzzKind, number>
  /** Per kind, how the relay answered: status, close code, or what the input was. */
  readonly outcomes: Record<FuzzKind, Record<string, number>>
  readonly rss: { readonly baselineMB: number; readonly boundMB: number; readonly minMB: number; readonly maxMB: number; readonly lastMB: number }
  /** The evil host's tunnels the relay closed, by close code, and how often it connected. */
  readonly evilTunnel: { readonly connects: number; readonly closes: Record<string, number> }
  /** `fuzz:h`'s tunnels the relay closed: none expected, no client may end a host's tunnel. */
  readonly echoTunnelCloses: Record<string, number>
  /** `relay_limit_hits_total` by limit, read from /metrics before the drain. */
  readonly limitHits: Record<string, number>
  /** The relay's warnings by event. */
  readonly warnings: Record<string, number>
  /** Bytes the relay wrote (its log) from the first batch to the end of the drain. */
  readonly logBytes: number
  /** Version 2: the hosts' tunnels the relay closed (none expected), what the evil host sent, what the good one answered. */
  readonly v2: {
    readonly evilCloses: Record<string, number>
    readonly goodCloses: Record<string, number>
    readonly frames: number
    readonly texts: number
    /** Frames the relay had to count as bad (a lower bound for `limitHits.bad_frame`). */
    readonly mustCount: number
    readonly staleFrames: number
    /** Frames the evil host did not send: whether the relay takes them depends on credit it cannot know of. */
    readonly withheldFrames: number
    readonly goodRequests: number
    /** Rules of version 2 the relay broke toward the well-behaved host, as its own StreamMux saw them: none expected. */
    readonly goodProblems: number
    /** Lines the relay logged about the evil host's tunnel, and how many its rate limit allows over the run. */
    readonly evilLogLines: number
    readonly evilLogLinesAllowed: number
  }
  /** Things that break the run's promises: a relay that died, hung, grew or logged an error. */
  readonly failures: ReadonlyArray<string>
  /** Odd but not failing: an owed answer that did not come within the input's time. At most 50 kept. */
  readonly anomalies: ReadonlyArray<string>
  readonly anomalyCount: number
  readonly exit: { readonly code: number | null; readonly signal: string | null; readonly drainMs: number } | undefined
  readonly durationMs: number
}

const defaults = { batchSize: 200, concurrency: 12, rssHeadroomMB: 150, goodTimeoutMs: 5000 }

/**
 * The relay's settings for a run: the production defaults, except timeouts short enough that a
 * batch meets them (the request, body read, send and hold timeouts, the drain's flush) and version
 * 2's windows.
 */
export const fuzzRelayEnv: Record<string, string> = {
  RELAY_AUTH_SECRET: testSecret,
  LOG_LEVEL: process.env.FUZZ_RELAY_LOG_LEVEL ?? "warn",
  REGION: "fuzz",
  MACHINE_ID: "fuzz-1",
  REQUEST_TIMEOUT_MS: "3000",
  BODY_READ_TIMEOUT_MS: "1500",
  SEND_TIMEOUT_MS: "3000",
  BODY_BUDGET_WAIT_MS: "500",
  DRAIN_FLUSH_MS: "200",
  // A request for the evil host while it is away (it drained itself, and reconnects only when an
  // input sends again) is held for it: within a batch's wait, not the default 10 s.
  HOLD_MS: "2000",
  // Version 2's windows small, so that inputs overflowing them stay small.
  STREAM_WINDOW_BYTES: "65536",
  TUNNEL_WINDOW_BYTES: "262144"
}

// --- The run

/** The relay's RSS, sampled every 200 ms: its lowest and highest. */
const rssSampler = (pid: number, startMB: number) => {
  let minMB = startMB
  let maxMB = startMB
  const timer = setInterval(() => {
    const now = rssMB(pid)
    if (!Number.isFinite(now)) return
    minMB = Math.min(minMB, now)
    maxMB = Math.max(maxMB, now)
  }, 200)
  return { stop: () => clearInterval(timer), range: () => ({ minMB, maxMB }) }
}

/** SIGINT after the abuse: the relay must drain and exit 0, logging no error on the way. */
const drain = (relay: RelayProcess, failures: Array<string>, logsSeen: number) =>
  Effect.promise(async (): Promise<FuzzReport["exit"]> => {
    if (relay.child.exitCode !== null || relay.child.signalCode !== null) return undefined
    const signalled = Date.now()
    relay.signal("SIGINT")
    let timer: NodeJS.Timeout | undefined
    const exited = await Promise.race([relay.exited, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 20_000)))])
    clearTimeout(timer)
    for (const line of relay.logs.slice(logsSeen)) {
      if (isFailureLine(line)) failures.push(`drain: relay logged ${line.logLevel} ${messageOf(line)}: ${JSON.stringify(line).slice(0, 600)}`)
    }
    if (exited === undefined) {
      failures.push("the relay did not exit within 20 s of SIGINT")
      return undefined
    }
    if (exited.code !== 0) failures.push(`the relay exited ${exited.code ?? exited.signal} after SIGINT, not 0; its last output:\n${outputTail(relay)}`)
    return { code: exited.code, signal: exited.signal, drainMs: Date.now() - signalled }
  })

const outputBytes = (relay: RelayProcess) => {
  const { stdout, stderr } = relay.output()
  return Buffer.byteLength(stdout) + Buffer.byteLength(stderr)
}

const countBy = <T>(items: ReadonlyArray<T>, key: (item: T) => string) => {
  const out: Record<string, number> = {}
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1
  return out
}

export const runFuzz = (options: FuzzOptions): Effect.Effect<FuzzReport, never, Scope.Scope> =>
  Effect.gen(function*() {
    const started = Date.now()
    const batchSize = options.batchSize ?? defaults.batchSize
    const concurrency = options.concurrency ?? defaults.concurrency
    const goodTimeoutMs = options.goodTimeoutMs ?? defaults.goodTimeoutMs
    const log = options.log ?? (() => {})
    const env = { ...fuzzRelayEnv, ...options.env }

    // The relay and its hosts.
    const relay = yield* startQuietRelay(env)
    const tokens = yield* fuzzTokens
    yield* Effect.orDie(fakeHost(relay.ws, "fuzz:good", tokens.valid, (m) => okResponse(m.id, goodBody(m.path))))
    const echo = yield* echoHost(relay.ws, "fuzz:h", tokens.valid)
    const evil = yield* evilHost(relay.ws, "fuzz:evil", tokens.valid)
    const good2 = yield* goodV2Host(relay.ws, "fuzz:good2", tokens.valid)
    const evil2 = yield* evilV2Host(relay.ws, "fuzz:evil2", tokens.valid)
    const state: RunState = {
      relay,
      tokens,
      evil,
      evil2,
      requestTimeoutMs: Number(env.REQUEST_TIMEOUT_MS ?? 30_000),
      outcomes: { tunnel: {}, upgrade: {}, http: {}, clientWs: {}, stream: {} },
      anomalies: [],
      failures: [],
      anomalyCount: 0,
      recentFrames: [],
      trace: options.trace ?? (() => {})
    }

    // The known-good request works before anything else is sent; the RSS then is the baseline.
    const first = yield* Effect.promise(() => checkRelay(state, { batch: -1, goodTimeoutMs: 10_000, boundMB: Infinity, logsSeen: 0, otherSeen: 0 }))
    const baselineMB = first.rss
    const boundMB = baselineMB + (options.rssHeadroomMB ?? defaults.rssHeadroomMB)
    log(`seed ${options.seed}: relay pid ${relay.pid} on port ${relay.port}, RSS ${baselineMB.toFixed(0)} MB at the start, bound ${boundMB.toFixed(0)} MB`)
    const rss = rssSampler(relay.pid, baselineMB)
    yield* Effect.addFinalizer(() => Effect.sync(rss.stop))

    // Batches until the time is up, or until the relay is gone, deaf or too big.
    const root = prng(options.seed)
    const gen = genOptions(options.knownBugs ?? false)
    const kinds = options.kinds ?? fuzzKinds
    const inputs: Record<FuzzKind, number> = { tunnel: 0, upgrade: 0, http: 0, clientWs: 0, stream: 0 }
    const outputAtStart = outputBytes(relay)
    const batches: Array<BatchReport> = []
    let logsSeen = relay.logs.length
    let otherSeen = relay.other.length
    const evilClosesSeen = new Map<string, number>()
    const v2ClosesSeen = new Map<string, number>()
    let fatal = first.fatal
    const fuzzStarted = Date.now()
    for (let batch = 0; !fatal && Date.now() - fuzzStarted < options.seconds * 1000; batch++) {
      const batchStarted = Date.now()
      const plans = planBatch(root, batch, batchSize, gen, kinds)
      for (const p of plans) inputs[p.kind]++
      yield* Effect.promise(() => runBatch(state, plans, batch, concurrency))
      options.beforeChecks?.(relay, batch)
      const checked = yield* Effect.promise(() => checkRelay(state, { batch, goodTimeoutMs, boundMB, logsSeen, otherSeen }))
      logsSeen = relay.logs.length
      otherSeen = relay.other.length
      fatal = checked.fatal
      // The evil host's tunnel may be closed 1007 (invalid UTF-8 is one of its inputs); any other close is worth a look.
      for (const [code, n] of evil.closes) {
        if ((evilClosesSeen.get(code) ?? 0) < n && code !== "1007") {
          anomaly(state, `batch ${batch}: the relay closed the evil host's tunnel with ${code}; its last frames: ${state.recentFrames.join(" | ")}`)
        }
        evilClosesSeen.set(code, n)
      }
      // A version 2 host loses a stream for a broken rule, never its tunnel.
      for (const [name, closes] of [["fuzz:evil2", evil2.closes], ["fuzz:good2", good2.closes]] as const) {
        for (const [code, n] of closes) {
          if ((v2ClosesSeen.get(`${name} ${code}`) ?? 0) < n) state.failures.push(`batch ${batch}: the relay closed ${name}'s version 2 tunnel with ${code}`)
          v2ClosesSeen.set(`${name} ${code}`, n)
        }
      }
      const report: BatchReport = { batch, inputs: plans.length, ms: Date.now() - batchStarted, good: { status: checked.status, ms: checked.ms, ok: checked.ok }, rssMB: +checked.rss.toFixed(1) }
      batches.push(report)
      log(`batch ${batch}: ${plans.length} inputs in ${report.ms} ms; known-good ${report.good.status} in ${report.good.ms} ms; RSS ${report.rssMB} MB`)
    }

    // What the relay counted, and the tunnels it closed, before the drain closes every one 4001.
    const hits = yield* Effect.promise(() => limitHits(relay.http))
    const evilCloses = Object.fromEntries(evil.closes)
    const echoCloses = Object.fromEntries(echo.closes)
    const lastMB = rssMB(relay.pid)
    const bookCounts = { ...evil2.books.counts }
    const goodProblems = good2.counts().problems
    if (goodProblems > 0) state.failures.push(`the relay broke version 2's rules ${goodProblems} times toward the well-behaved host (as its StreamMux saw them)`)
    if ((hits.bad_frame ?? 0) < bookCounts.mustCount) {
      state.failures.push(`the relay counted ${hits.bad_frame ?? 0} bad frames, fewer than the ${bookCounts.mustCount} the version 2 evil host sent that break a rule`)
    }
    // What the evil version 2 host makes the relay log is rate-limited per tunnel: 5 lines every 10 s.
    const evilLogLines = relay.logs.filter((l) => l.annotations?.hostId === "fuzz:evil2").length
    const evilLogLinesAllowed = 5 * (Math.ceil((Date.now() - fuzzStarted) / 10_000) + 1)
    if (evilLogLines > evilLogLinesAllowed) {
      state.failures.push(`the relay logged ${evilLogLines} lines about the evil version 2 host's tunnel, more than the ${evilLogLinesAllowed} its rate limit allows`)
    }
    const exit = yield* drain(relay, state.failures, logsSeen)
    rss.stop()
    const { minMB, maxMB } = rss.range()
    return {
      seed: options.seed,
      seconds: options.seconds,
      batchSize,
      concurrency,
      env: Object.fromEntries(Object.entries(env).filter(([k]) => k !== "RELAY_AUTH_SECRET")),
      batches,
      inputs,
      outcomes: state.outcomes,
      rss: { baselineMB: +baselineMB.toFixed(1), boundMB: +boundMB.toFixed(1), minMB: +minMB.toFixed(1), maxMB: +maxMB.toFixed(1), lastMB: +lastMB.toFixed(1) },
      evilTunnel: { connects: evil.connects(), closes: evilCloses },
      echoTunnelCloses: echoCloses,
      limitHits: hits,
      warnings: countBy(relay.logs.filter((l) => String(l.logLevel).toUpperCase() === "WARN"), messageOf),
      logBytes: outputBytes(relay) - outputAtStart,
      v2: {
        evilCloses: Object.fromEntries(evil2.closes),
        goodCloses: Object.fromEntries(good2.closes),
        frames: bookCounts.frames,
        texts: bookCounts.texts,
        mustCount: bookCounts.mustCount,
        staleFrames: bookCounts.stale,
        withheldFrames: bookCounts.withheld,
        goodRequests: good2.counts().requests,
        goodProblems,
        evilLogLines,
        evilLogLinesAllowed
      },
      failures: state.failures,
      anomalies: state.anomalies,
      anomalyCount: state.anomalyCount,
      exit,
      durationMs: Date.now() - started
    } satisfies FuzzReport
  })
