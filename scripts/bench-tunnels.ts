/**
 * `npm run bench:tunnels`: opens many idle tunnels to one relay (with Redis),
 * measures the relay's memory per tunnel, then SIGINTs it and measures the
 * drain: every drain frame sent, the last 4001 close, the directory clear (one
 * EVAL), signal to exit, and what is left in the directory.
 *
 * Flags: --tunnels 10000 --workers 2 --out bench-results
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { Redis } from "ioredis"
import { messageOf, privateRedis, startRelayProcess, testSecret, token } from "@effect-relay/testkit"
import { commit, flags, machine, repoRoot, rssKB, sleep, table, writeResult } from "./lib/bench.js"

const options = flags({ tunnels: 10_000, workers: 2, out: path.join(repoRoot, "bench-results") })

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

const startWorker = (relayWs: string, jwt: string, first: number, count: number) => {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "scripts/lib/tunnel-worker.ts"), relayWs, jwt, "bench", String(first), String(count), "200"], {
    cwd: repoRoot,
    stdio: ["pipe", "pipe", "inherit"]
  })
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<() => void> = []
  let buffer = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString()
    let nl: number
    while ((nl = buffer.indexOf("\n")) !== -1) {
      lines.push(JSON.parse(buffer.slice(0, nl)))
      buffer = buffer.slice(nl + 1)
      for (const w of waiters.splice(0)) w()
    }
  })
  const waitFor = (type: string, timeoutMs: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker: no ${type} within ${timeoutMs} ms`)), timeoutMs)
      const check = () => {
        const found = lines.find((l) => l.type === type)
        if (found) {
          clearTimeout(timer)
          resolve(found)
        } else waiters.push(check)
      }
      check()
    })
  return { child, waitFor, askReport: () => child.stdin!.write("report\n") }
}

const program = Effect.gen(function*() {
  const external = process.env.REDIS_URL
  const redisUrl = external ?? (yield* privateRedis).url
  const prefix = `bench:tunnels:${Date.now()}:`
  const relay = yield* startRelayProcess({
    env: {
      RELAY_AUTH_SECRET: testSecret,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: prefix,
      RELAY_PEER_SECRET: "bench-peer-secret",
      REGION: "bench",
      MACHINE_ID: "r1"
    }
  })
  const redis = new Redis(redisUrl)
  yield* Effect.addFinalizer(() => Effect.promise(async () => {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length) await redis.del(...keys)
    await redis.quit()
  }))
  const jwt = yield* token({ org: "bench" })
  yield* Effect.promise(() => sleep(1000))
  const rssBefore = rssKB(relay.pid)

  const perWorker = Math.ceil(options.tunnels / options.workers)
  const workers = Array.from({ length: options.workers }, (_, w) =>
    startWorker(relay.ws, jwt, w * perWorker, Math.min(perWorker, options.tunnels - w * perWorker)))
  const openStart = Date.now()
  const opened = yield* Effect.promise(() => Promise.all(workers.map((w) => w.waitFor("opened", 300_000))))
  const openFailed = opened.reduce((n, o) => n + Number(o.failed), 0)
  // Registered means in the directory.
  const owner = "bench:r1"
  while ((yield* Effect.promise(() => redis.hlen(`${prefix}tunnel-owner`))) < options.tunnels - openFailed) {
    yield* Effect.promise(() => sleep(100))
  }
  const openMs = Date.now() - openStart
  yield* Effect.promise(() => sleep(2000))
  const rssAfter = rssKB(relay.pid)

  const signalAt = Date.now()
  relay.signal("SIGINT")
  const exit = yield* Effect.promise(() => relay.exited)
  const exitAt = Date.now()
  // A worker reports by itself once every tunnel it holds has closed; past 15 s, ask for what it has.
  const reports = (yield* Effect.promise(() =>
    Promise.all(workers.map((w) =>
      w.waitFor("report", 15_000).catch(() => {
        w.askReport()
        return w.waitFor("report", 10_000)
      })
    ))
  )) as unknown as Array<WorkerReport>
  const owned = yield* Effect.promise(() => redis.hgetall(`${prefix}tunnel-owner`))
  const leftoverEntries = Object.values(owned).filter((o) => o === owner).length

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
  if (process.env.BENCH_VERBOSE) for (const l of relay.logs.filter((l) => messageOf(l).startsWith("drain."))) console.log(messageOf(l), l.at - (signalAt - relay.spawnedAt), JSON.stringify(l.annotations))
  for (const w of workers) w.child.kill()
})

Effect.runPromise(Effect.scoped(program)).catch((e) => {
  console.error(e)
  process.exit(1)
})
