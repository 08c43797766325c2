/**
 * `npm run bench:tunnels`: opens many idle tunnels to one relay (with Redis),
 * measures the relay's memory per tunnel, then SIGINTs it and measures the
 * drain: every drain frame sent, the last 4001 close, the directory clear (one
 * EVAL), signal to exit, and what is left in the directory.
 *
 * Flags: --tunnels 10000 --workers 2 --out bench-results
 */
import { Effect } from "effect"
import * as path from "node:path"
import { Redis } from "ioredis"
import { messageOf, privateRedis, testSecret, token } from "@effect-relay/testkit"
import { commit, flags, machine, repoRoot, rssKB, sleep, table, writeResult } from "./lib/bench.js"
import { exitOnSignals, scopedChild, tsx } from "./lib/processes.js"
import { startRelay } from "./lib/relay-process.js"

const options = flags({ tunnels: 10_000, workers: 2, out: path.join(repoRoot, "bench-results") })
exitOnSignals()

interface WorkerReport {
  readonly open: number
  readonly failed: number
  readonly drainFrames: number
  readonly firstDrainAt: number | null
  readonly lastDrainAt: number | null
  readonly lastCloseAt: number | null
  readonly closes: number
  readonly codes: Record<string, number>
}

type Relay = Effect.Effect.Success<ReturnType<typeof startRelay>>
type Worker = Effect.Effect.Success<ReturnType<typeof startWorker>>

/** A process holding `count` tunnels (hosts `bench:h<first>`...), opened 200 at a time; killed when the scope closes. */
const startWorker = (index: number, relayWs: string, jwt: string, first: number, count: number) =>
  scopedChild({
    name: `tunnel worker ${index}`,
    args: tsx(path.join(repoRoot, "scripts/lib/tunnel-worker.ts"), relayWs, jwt, "bench", String(first), String(count), "200"),
    stdin: true
  }).pipe(Effect.map((child) => ({
    /** The first JSON line of `type` it printed. */
    waitFor: (type: string, timeoutMs: number) => child.firstJson(timeoutMs, (line) => line.type === type),
    askReport: () => child.write("report\n")
  })))

/** The directory's entries of this run: REDIS_URL or a private redis-server, under a fresh prefix removed at the end. */
const directoryClient = (redisUrl: string, prefix: string) =>
  Effect.acquireRelease(Effect.sync(() => new Redis(redisUrl)), (redis) =>
    Effect.promise(async () => {
      const keys = await redis.keys(`${prefix}*`)
      if (keys.length) await redis.del(...keys)
      await redis.quit()
    }))

/** Opens every tunnel over the workers and waits until the directory holds them all; how long that took. */
const openTunnels = (relay: Relay, redis: Redis, prefix: string, jwt: string) =>
  Effect.gen(function*() {
    const perWorker = Math.ceil(options.tunnels / options.workers)
    const workers = yield* Effect.forEach(Array.from({ length: options.workers }, (_, w) => w), (w) =>
      startWorker(w, relay.ws, jwt, w * perWorker, Math.min(perWorker, options.tunnels - w * perWorker)))
    const openStart = Date.now()
    const opened = yield* Effect.promise(() => Promise.all(workers.map((w) => w.waitFor("opened", 300_000))))
    const openFailed = opened.reduce((n, o) => n + Number(o.failed), 0)
    // Registered means in the directory.
    while ((yield* Effect.promise(() => redis.hlen(`${prefix}tunnels`))) < options.tunnels - openFailed) {
      yield* Effect.promise(() => sleep(100))
    }
    return { workers, openMs: Date.now() - openStart }
  })

/** SIGINT to the relay: its exit, and each worker's report of the drain frames and closes it saw. */
const drain = (relay: Relay, workers: ReadonlyArray<Worker>) =>
  Effect.promise(async () => {
    const signalAt = Date.now()
    relay.child.signal("SIGINT")
    const exit = await relay.child.exited
    const exitAt = Date.now()
    // A worker reports by itself once every tunnel it holds has closed; past 15 s, ask for what it has.
    const reports = (await Promise.all(workers.map((w) =>
      w.waitFor("report", 15_000).catch(() => {
        w.askReport()
        return w.waitFor("report", 10_000)
      })
    ))) as unknown as Array<WorkerReport>
    return { signalAt, exit, exitAt, reports }
  })

const program = Effect.gen(function*() {
  const external = process.env.REDIS_URL
  const redisUrl = external ?? (yield* privateRedis).url
  const prefix = `bench:tunnels:${Date.now()}:`
  const relay = yield* startRelay({
    RELAY_AUTH_SECRET: testSecret,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    RELAY_PEER_SECRET: "bench-peer-secret",
    REGION: "bench",
    MACHINE_ID: "r1"
  })
  const redis = yield* directoryClient(redisUrl, prefix)
  const jwt = yield* token({ org: "bench" })
  yield* Effect.promise(() => sleep(1000))
  const rssBefore = rssKB(relay.child.pid)
  const { workers, openMs } = yield* openTunnels(relay, redis, prefix, jwt)
  yield* Effect.promise(() => sleep(2000))
  const rssAfter = rssKB(relay.child.pid)

  const { signalAt, exit, exitAt, reports } = yield* drain(relay, workers)
  // The directory's entries are `hostId|owner` fields of `{prefix}tunnels`.
  const entries = yield* Effect.promise(() => redis.hkeys(`${prefix}tunnels`))
  const leftoverEntries = entries.filter((field) => field.endsWith("|bench:r1")).length

  const log = (name: string) => relay.logs.find((l) => messageOf(l) === name)?.annotations ?? {}
  const lastDrainAt = Math.max(...reports.map((r) => r.lastDrainAt ?? 0))
  const lastCloseAt = Math.max(...reports.map((r) => r.lastCloseAt ?? 0))
  const codes: Record<string, number> = {}
  for (const r of reports) for (const [code, n] of Object.entries(r.codes)) codes[code] = (codes[code] ?? 0) + n

  const result = {
    commit: commit(),
    date: new Date().toISOString(),
    machine: machine(),
    tunnels: options.tunnels,
    opened: reports.reduce((n, r) => n + r.open, 0),
    openMs,
    rssBeforeMB: +(rssBefore / 1024).toFixed(1),
    rssAfterMB: +(rssAfter / 1024).toFixed(1),
    rssPerTunnelKB: +((rssAfter - rssBefore) / options.tunnels).toFixed(2),
    drainFramesReceived: reports.reduce((n, r) => n + r.drainFrames, 0),
    drainFramesMs: lastDrainAt - signalAt,
    relayNotifiedMs: log("drain.notified").ms,
    lastCloseMs: lastCloseAt - signalAt,
    closeCodes: codes,
    directoryClearMs: log("drain.directory_cleared").clearMs,
    directoryCleared: log("drain.directory_cleared").entries,
    relayDrainMs: log("drain.done").ms,
    signalToExitMs: exitAt - signalAt,
    exitCode: exit.code,
    leftoverEntries
  }
  const file = writeResult("tunnels", result, options.out)
  console.log(table([
    { metric: "tunnels opened", value: result.opened, target: options.tunnels },
    { metric: "relay RSS before / after (MB)", value: `${result.rssBeforeMB} / ${result.rssAfterMB}`, target: "" },
    { metric: "RSS per tunnel (KB)", value: result.rssPerTunnelKB, target: "<= 30" },
    { metric: "signal -> every drain frame received (ms)", value: result.drainFramesMs, target: "" },
    { metric: "signal -> last 4001 close (ms)", value: result.lastCloseMs, target: "" },
    { metric: "directory clear, one EVAL (ms)", value: result.directoryClearMs as number, target: "<= 100" },
    { metric: "signal -> exit (ms)", value: result.signalToExitMs, target: "<= 1500" },
    { metric: "exit code", value: result.exitCode ?? "null", target: 0 },
    { metric: "leftover directory entries", value: result.leftoverEntries, target: 0 }
  ]))
  console.log(`close codes: ${JSON.stringify(codes)}\nwritten: ${file}`)
  if (process.env.BENCH_VERBOSE) for (const l of relay.logs.filter((l) => messageOf(l).startsWith("drain."))) console.log(messageOf(l), l.at - (signalAt - relay.child.spawnedAt), JSON.stringify(l.annotations))
})

Effect.runPromise(Effect.scoped(program)).catch((e) => {
  console.error(e)
  process.exit(1)
})
