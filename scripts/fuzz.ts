/**
 * `npm run fuzz -- --seconds N [--seed S] [--kinds K,...]`: hostile input against a relay process, seeded.
 *
 * Starts `effect-relay serve` (LOG_LEVEL=warn, short request/body/send/hold timeouts, small
 * version 2 windows), five hosts of org `fuzz`, then batches of inputs from five generators (see
 * packages/testkit/src/fuzz/):
 *   tunnel    frames from an authenticated host: mutated messages, non-messages, binary, invalid
 *             UTF-8, interleaved with client requests through it and valid answers to them
 *   upgrade   raw upgrade requests on /tunnel and /hosts/...: bad hostIds, hostile tokens, broken
 *             handshakes, huge headers, bytes after the request
 *   http      raw HTTP requests to /hosts/fuzz:h/...: odd methods and paths, conflicting framing,
 *             bad chunks, folding, bodies that stop, pipelining, half-closes
 *   clientWs  hand-written WebSocket frames through a channel: fragments, bad close codes, reserved
 *             bits, unmasked frames, lengths that lie
 *   stream    protocol version 2: a host sends hostile binary frames (bad headers and kinds, unknown
 *             ids, bytes after End or over a window, Window overflows, messages on body streams, End
 *             twice, oversized frames) and control messages (bad heads, resets and closes for streams
 *             not there, messages of the wrong version or direction) among honest answers, while
 *             clients stream through it and through a well-behaved version 2 host
 * After each batch the relay must still run, answer a known-good request through a real tunnel
 * with the right body within 5 s, stay under its RSS bound (its size before the first batch plus
 * --headroom MB) and have logged no error or defect; version 2's clients get only what the evil
 * host's books allow, and the good host's get everything; at the end bad_frame must count every
 * rule broken and SIGINT must drain the relay to exit 0.
 * Prints a table, writes bench-results/fuzz-<timestamp>.json, exits 1 on any failure.
 * The same --seed replays the same inputs (the relay's timing is its own).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { type FuzzKind, type FuzzReport, fuzzKinds, parseSeed, randomSeed, runFuzz } from "@effect-relay/testkit"
import { Cause, Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { commit, flags, machine, repoRoot, table, workingTreeDirty, writeResult } from "./lib/bench.js"

const help = `npm run fuzz -- --seconds N [--seed S]: seeded hostile input against a relay process.
--seed: a 32-bit unsigned integer (decimal or 0x-hex); "random" picks one (printed, to replay it).
--batch inputs per batch, --concurrency inputs in progress at once, --headroom RSS growth allowed (MB).
--kinds: "all", or a comma-separated list of ${fuzzKinds.join(", ")} (stream: version 2 hosts).
--trace <file> appends every input as it starts (and what it sent) to <file>.
--known-bugs 1 also sends the inputs of bugs still open (packages/testkit/src/fuzz/KnownBugs.ts).`

const options = flags({ seconds: 30, seed: "random", batch: 200, concurrency: 12, headroom: 150, "known-bugs": 0, kinds: "all", trace: "", out: path.join(repoRoot, "bench-results") }, process.argv.slice(2), help)
if (!(options.seconds > 0)) throw new Error(`--seconds must be > 0, got ${options.seconds}`)
for (const name of ["batch", "concurrency", "headroom"] as const) {
  if (!Number.isInteger(options[name]) || options[name] < 1) throw new Error(`--${name} must be a whole number >= 1, got ${options[name]}`)
}
const seed = options.seed === "random" ? randomSeed() : parseSeed(options.seed)
const kinds = options.kinds === "all" ? fuzzKinds : options.kinds.split(",").map((k) => k.trim()) as Array<FuzzKind>
for (const kind of kinds) if (!fuzzKinds.includes(kind)) throw new Error(`--kinds: unknown kind ${kind}; the kinds are ${fuzzKinds.join(", ")}`)

const top = (counts: Record<string, number>, n: number) =>
  Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${k} ${v}`).join(", ")

const printReport = (report: FuzzReport) => {
  console.log("\n" + table(fuzzKinds.map((kind) => ({ kind, inputs: report.inputs[kind], "most frequent outcomes": top(report.outcomes[kind], 6) }))))
  const goodMs = report.batches.map((b) => b.good.ms)
  console.log("\n" + table([{
    seed: report.seed,
    batches: report.batches.length,
    inputs: fuzzKinds.reduce((sum, k) => sum + report.inputs[k], 0),
    "seconds": +(report.durationMs / 1000).toFixed(1),
    "log KB": +(report.logBytes / 1024).toFixed(1),
    "known-good max ms": goodMs.length ? Math.max(...goodMs) : "-",
    "RSS start MB": report.rss.baselineMB,
    "RSS min MB": report.rss.minMB,
    "RSS max MB": report.rss.maxMB,
    "RSS bound MB": report.rss.boundMB,
    "drain exit": report.exit ? `${report.exit.code ?? report.exit.signal} in ${report.exit.drainMs} ms` : "-",
    anomalies: report.anomalyCount,
    failures: report.failures.length
  }]))
  console.log(`\nevil host: ${report.evilTunnel.connects} connections, closed by the relay ${JSON.stringify(report.evilTunnel.closes)}; fuzz:h closed ${JSON.stringify(report.echoTunnelCloses)}`)
  console.log(`version 2: evil host sent ${report.v2.frames} binary frames and ${report.v2.texts} control messages, ${report.v2.mustCount} of them breaking a rule, ${report.v2.staleFrames} for streams not there (${report.v2.withheldFrames} withheld: the relay's credit unknown); good host answered ${report.v2.goodRequests} (rules the relay broke toward it: ${report.v2.goodProblems}); tunnels closed: evil2 ${JSON.stringify(report.v2.evilCloses)}, good2 ${JSON.stringify(report.v2.goodCloses)}`)
  console.log(`relay log: ${report.logBytes} bytes (${(report.logBytes / (report.durationMs / 1000)).toFixed(0)} B/s); ${report.v2.evilLogLines} lines about the evil version 2 host (its rate limit allows ${report.v2.evilLogLinesAllowed})`)
  console.log(`limit hits: ${JSON.stringify(report.limitHits)}`)
  console.log(`warnings: ${JSON.stringify(report.warnings)}`)
  for (const a of report.anomalies.slice(0, 10)) console.log(`anomaly: ${a}`)
  for (const f of report.failures) console.log(`FAILURE: ${f}`)
}

const main = Effect.gen(function*() {
  console.log(`fuzz: seed ${seed} (replay with --seed ${seed}), ${options.seconds} s, ${options.batch} inputs per batch, ${options.concurrency} at once${options["known-bugs"] === 1 ? ", known bugs included" : ""}`)
  const report = yield* runFuzz({
    seconds: options.seconds,
    seed,
    batchSize: options.batch,
    concurrency: options.concurrency,
    rssHeadroomMB: options.headroom,
    knownBugs: options["known-bugs"] === 1,
    kinds,
    ...(options.trace === "" ? {} : { trace: (line: string) => fs.appendFileSync(options.trace, line + "\n") }),
    log: (line) => console.log(line)
  })
  printReport(report)
  const file = writeResult("fuzz", { commit: commit(), dirty: workingTreeDirty(), date: new Date().toISOString(), machine: machine(), ...report }, options.out)
  console.log(`\nwritten: ${file}`)
  if (report.failures.length > 0) {
    const replay = [`--seconds ${options.seconds}`, `--seed ${seed}`, ...(options.batch === 200 ? [] : [`--batch ${options.batch}`]), ...(options["known-bugs"] === 1 ? ["--known-bugs 1"] : []), ...(options.kinds === "all" ? [] : [`--kinds ${options.kinds}`])]
    console.log(`\n${report.failures.length} failure(s); replay with: npm run fuzz -- ${replay.join(" ")}`)
    return yield* Effect.fail("failures")
  }
})

// SIGINT/SIGTERM interrupt the program, so the relay (a child process) is killed by its finalizer.
NodeRuntime.runMain(main.pipe(
  Effect.scoped,
  Effect.tapErrorCause((cause) => Cause.isInterruptedOnly(cause) || Cause.isFailType(cause) ? Effect.void : Effect.sync(() => console.error(Cause.pretty(cause))))
), {
  disablePrettyLogger: true,
  disableErrorReporting: true,
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? 0 : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
})
