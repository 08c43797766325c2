/**
 * `npm run gameday`: a rolling restart of two relays under load, measured.
 *
 * Starts Redis (a private `redis-server` on a free port unless REDIS_URL is
 * set), two relays (the real CLI, proxy routing, one shared directory), one
 * target, a load generator behaving like a plain load balancer in front of
 * the relays, and, for each round, N real host agents (in a few worker
 * processes) that know both relay URLs and hold `--tunnels` tunnels each
 * (default 2: one on each relay). Each round restarts relay A then relay B in
 * place (signal, wait for the exit, start again on the same port, wait for
 * /ready, wait for every host to be back to all its tunnels):
 * - `drain`: SIGINT, the relay's drain;
 * - `sigkill`: SIGKILL, a crash;
 * - `drain-prefix-backoff`: SIGINT, but hosts run the backoff from before
 *   drains were handled (no reset on a drain, cap 30 s);
 * - `single-relay`: a third relay alone (in-memory directory), one tunnel per
 *   host, drained and restarted in place.
 * Prints a table and writes `bench-results/gameday-<timestamp>.json`.
 * The flags are in gameday/options.ts, a round in gameday/round.ts, the
 * figures and tables in gameday/report.ts.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { freePort, privateRedis, testSecret, token } from "@effect-relay/testkit"
import { Cause, Effect, Exit } from "effect"
import { Redis } from "ioredis"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { rssKB } from "./lib/bench.js"
import { startLoadGenerator } from "./gameday/load-generator.js"
import { type GamedayOptions, parseOptions, roundKinds } from "./gameday/options.js"
import { type RelayInstance, relayInstance } from "./gameday/relay-instance.js"
import { log, printTables, type RoundResult, writeGamedayResult } from "./gameday/report.js"
import { runRound } from "./gameday/round.js"

const options = parseOptions(process.argv.slice(2))

/** A plain target every host forwards to: `200 ok`, connections kept for the whole run. */
const startTarget = Effect.acquireRelease(
  Effect.async<http.Server>((resume) => {
    const server = http.createServer((req, res) => {
      req.resume()
      res.end("ok")
    })
    // Longer than any round: an idle-timeout race on the target is not what this measures.
    server.keepAliveTimeout = 600_000
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as { port: number }).port}`))

/** The shared directory: REDIS_URL or a private redis-server; a fresh key prefix, its keys removed at the end. */
const openDirectory = Effect.gen(function*() {
  const external = process.env.REDIS_URL
  const url = external ?? (yield* privateRedis).url
  const prefix = `gameday:${Date.now()}:`
  const redis = new Redis(url, { maxRetriesPerRequest: 2 })
  redis.on("error", () => {})
  yield* Effect.addFinalizer(() =>
    Effect.promise(async () => {
      try {
        const keys = await redis.keys(`${prefix}*`)
        if (keys.length > 0) await redis.del(...keys)
      } finally {
        redis.disconnect()
      }
    }).pipe(Effect.timeout("5 seconds"), Effect.ignore)
  )
  return { url, external: external !== undefined, prefix, redis }
})

/**
 * Relays a and b, started. Whatever state a relay is in when the run ends (one may have failed
 * to start): killed, and its log lines (every run of the process) kept next to the workers' logs.
 */
const startRelays = (names: ReadonlyArray<string>, env: Record<string, string>, region: string, logsDir: string) =>
  Effect.gen(function*() {
    const relays: Array<RelayInstance> = []
    for (const name of names) relays.push(relayInstance({ name, port: yield* freePort, region, env }))
    yield* Effect.addFinalizer(() =>
      Effect.promise(() =>
        Promise.all(relays.map(async (r) => {
          if (r.isRunning()) await r.stop("SIGKILL")
          const lines = [...r.logs().map((l) => JSON.stringify(l)), ...r.otherOutput()]
          fs.writeFileSync(path.join(logsDir, `relay-${r.name}.log`), lines.join("\n") + "\n")
        }))
      )
    )
    yield* Effect.promise(() => Promise.all(relays.map((r) => r.start())))
    return relays
  })

const gameday = (options: GamedayOptions) =>
  Effect.gen(function*() {
    const logsDir = fs.mkdtempSync(path.join(os.tmpdir(), "gameday-"))
    log(`${options.hosts} hosts, ${options.tunnels} tunnel(s) each, ${options.rate} req/s, rounds ${options.rounds.join(", ")}; logs in ${logsDir}`)
    const directory = yield* openDirectory
    const targetUrl = yield* startTarget
    const hostToken = yield* token({ org: options.org, expiresIn: 6 * 3600 })
    const clientToken = yield* token({ org: options.org, expiresIn: 6 * 3600 })
    const relays = yield* startRelays(["a", "b"], {
      RELAY_AUTH_SECRET: testSecret,
      REDIS_URL: directory.url,
      REDIS_KEY_PREFIX: directory.prefix,
      RELAY_PEER_SECRET: `gameday-peer-${process.pid}-${Date.now()}`,
      ROUTING: "proxy",
      LOG_LEVEL: "info"
    }, options.org, logsDir)
    log(`relays a ${relays[0]!.http}, b ${relays[1]!.http}; redis ${directory.external ? "from REDIS_URL" : directory.url} prefix ${directory.prefix}`)
    // The single-relay round's relay: alone, no Redis (its directory in memory).
    const single = options.rounds.some((r) => roundKinds[r].relays === "single")
      ? (yield* startRelays(["s"], { RELAY_AUTH_SECRET: testSecret, LOG_LEVEL: "info" }, options.org, logsDir))[0]
      : undefined
    if (single !== undefined) log(`relay s ${single.http} (in-memory directory)`)
    // Before any host: what each relay costs with none, subtracted for the RSS per host.
    yield* Effect.sleep("1 second")
    const idleRssKB = Object.fromEntries([...relays, ...(single ? [single] : [])].map((r) => [r.name, rssKB(r.pid()!)]))
    const load = yield* startLoadGenerator({
      hostIds: options.hostIds,
      token: clientToken,
      rate: options.rate,
      timeoutMs: options.requestTimeoutMs,
      logFile: path.join(logsDir, "load.log")
    })

    const results: Array<RoundResult> = []
    const ctx = { options, relays, single, idleRssKB, load, redis: directory.redis, prefix: directory.prefix, hostToken, targetUrl, logsDir }
    for (const name of options.rounds) results.push(yield* runRound(name, ctx))

    const file = writeGamedayResult(options, { redis: directory.external ? "REDIS_URL" : "private redis-server", logsDir }, results)
    printTables(results)
    console.log(`\nwritten: ${file}`)
  })

// A crash in a callback must still run the finalizers (children, Redis): turn it into an interrupt.
let crashed = false
const crash = (error: unknown) => {
  console.error("gameday failed:", error)
  crashed = true
  process.kill(process.pid, "SIGTERM")
}
process.on("uncaughtException", crash)
process.on("unhandledRejection", crash)

// SIGINT/SIGTERM interrupt the program, so every finalizer runs (workers, relays, Redis, target).
NodeRuntime.runMain(
  gameday(options).pipe(
    Effect.scoped,
    Effect.tapErrorCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Effect.sync(() => console.error(Cause.pretty(cause))))
  ),
  {
    disablePrettyLogger: true,
    disableErrorReporting: true,
    teardown: (exit, onExit) =>
      onExit(crashed ? 1 : Exit.isSuccess(exit) ? 0 : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
  }
)
