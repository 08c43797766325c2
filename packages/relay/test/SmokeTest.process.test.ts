import { freePort, startRelayProcess, testSecret } from "@effect-relay/testkit"
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/**
 * scripts/smoke-test.sh (and scripts/deploy.sh around it) without Fly: two real relay processes
 * with REGION iad and ord behind a small local front that routes by `fly-prefer-region` the way
 * Fly's proxy would, plus routes that go wrong on purpose.
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const smokeTest = path.join(repoRoot, "scripts/smoke-test.sh")
const deployScript = path.join(repoRoot, "scripts/deploy.sh")
const deployStaging = path.join(repoRoot, "scripts/deploy-staging.sh")

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  /** stdout's lines, without the empty last one. */
  readonly lines: ReadonlyArray<string>
}

const run = (script: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.promise(() =>
    new Promise<Run>((resolve) => {
      execFile("bash", [script, ...args], { env: { ...process.env, ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
        resolve({ code, stdout, stderr, lines: stdout.split("\n").filter((l) => l !== "") })
      })
    })
  )

/** The script's line for one region (the line starts with the region name). */
const lineFor = (r: Run, region: string) => {
  const found = r.lines.filter((l) => l.split(/\s+/)[0] === region)
  expect(found, `one line for ${region} in:\n${r.stdout}\n${r.stderr}`).toHaveLength(1)
  return found[0]
}

class Front extends Context.Tag("test/SmokeFront")<Front, {
  /** The front's base URL. */
  readonly url: string
  /** A base URL where nothing listens. */
  readonly deadUrl: string
  /** Every fly-prefer-region header the front received, in order. */
  readonly seen: Array<string>
}>() {}

/**
 * Relays iad and ord, and the front: iad and ord to their relay; fra to the iad relay (a
 * mis-route); syd answered 503 by the front itself; ams a 200 that is not JSON; slow never
 * answers; anything else to iad (Fly's "nearest").
 */
const FrontLive = Layer.scoped(
  Front,
  Effect.gen(function*() {
    const env = (region: string) => ({ RELAY_AUTH_SECRET: testSecret, REGION: region, MACHINE_ID: `machine-${region}` })
    const [iad, ord] = yield* Effect.all([
      startRelayProcess({ env: env("iad") }),
      startRelayProcess({ env: env("ord") })
    ], { concurrency: 2 })
    const seen: Array<string> = []
    const proxyTo = (port: number, req: http.IncomingMessage, res: http.ServerResponse) => {
      const upstream = http.request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      })
      upstream.on("error", () => res.writeHead(502).end())
      req.pipe(upstream)
    }
    const server = http.createServer((req, res) => {
      const region = String(req.headers["fly-prefer-region"] ?? "")
      seen.push(region)
      switch (region) {
        case "ord":
          return proxyTo(ord.port, req, res)
        case "syd":
          return res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ error: "no_machines", region: "syd" }))
        case "ams":
          return res.writeHead(200, { "content-type": "text/html" }).end("<html>\n<body>maintenance</body>\n</html>")
        case "slow":
          return // never answers; the script's --timeout ends it
        default: // iad, and fra mis-routed to iad
          return proxyTo(iad.port, req, res)
      }
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
      () =>
        Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    const deadPort = yield* freePort
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      deadUrl: `http://127.0.0.1:${deadPort}`,
      seen
    }
  })
)

/** A stand-in for flyctl: logs its arguments; `deploy` exits FAKE_DEPLOY_RC; `machine list` prints FAKE_MACHINES. */
const fakeFly = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fake-fly-"))
    const bin = path.join(dir, "fly")
    const log = path.join(dir, "calls.log")
    fs.writeFileSync(
      bin,
      [
        "#!/usr/bin/env bash",
        `echo "$*" >> ${JSON.stringify(log)}`,
        "case $1 in",
        "  deploy) echo \"fake deploy\"; exit \"${FAKE_DEPLOY_RC:-0}\" ;;",
        "  machine) printf '%s' \"${FAKE_MACHINES:-[]}\" ;;",
        "  *) exit 64 ;;",
        "esac",
        ""
      ].join("\n"),
      { mode: 0o755 }
    )
    return { dir, bin, calls: () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter((l) => l !== "") : []) }
  }),
  ({ dir }) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const machines = (...list: ReadonlyArray<[string, string]>) =>
  JSON.stringify(list.map(([region, state], i) => ({ id: `m${i}`, region, state })))

layer(FrontLive, { timeout: "60 seconds", excludeTestServices: true })("scripts/smoke-test.sh against local relays", (it) => {
  it.effect("passes when every region answers 200 from a relay of that region; the request carries fly-prefer-region", () =>
    Effect.gen(function*() {
      const front = yield* Front
      const from = front.seen.length
      const r = yield* run(smokeTest, [front.url, "iad", "ord"])
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(lineFor(r, "iad")).toMatch(/^iad\s+status=200\s+region=iad\s+machine=machine-iad\s+pass$/)
      expect(lineFor(r, "ord")).toMatch(/^ord\s+status=200\s+region=ord\s+machine=machine-ord\s+pass$/)
      expect(r.lines.at(-1)).toBe(`smoke-test: all 2 regions pass at ${front.url}`)
      expect(r.lines).toHaveLength(3)
      expect(front.seen.slice(from)).toEqual(["iad", "ord"])
    }))

  it.effect("a region answered by another region's relay fails: wrong region", () =>
    Effect.gen(function*() {
      const front = yield* Front
      const r = yield* run(smokeTest, [front.url, "iad", "fra"])
      expect(r.code, r.stdout + r.stderr).toBe(1)
      expect(lineFor(r, "iad")).toMatch(/\spass$/)
      expect(lineFor(r, "fra")).toMatch(/^fra\s+status=200\s+region=iad\s+machine=machine-iad\s+FAIL wrong region: answered by iad$/)
      expect(r.lines.at(-1)).toBe(`smoke-test: 1 of 2 regions FAILED at ${front.url}: fra`)
    }))

  it.effect("a non-200 answer fails, with the status and the start of the body", () =>
    Effect.gen(function*() {
      const front = yield* Front
      const r = yield* run(smokeTest, [`${front.url}/`, "syd", "ord"])
      expect(r.code, r.stdout + r.stderr).toBe(1)
      // The body names region syd, but the status alone fails it.
      expect(lineFor(r, "syd")).toMatch(/^syd\s+status=503\s+region=syd\s+.*FAIL status 503, want 200: \{"error":"no_machines","region":"syd"\}$/)
      expect(lineFor(r, "ord")).toMatch(/\spass$/)
    }))

  it.effect("a 200 whose body is not JSON fails", () =>
    Effect.gen(function*() {
      const front = yield* Front
      const r = yield* run(smokeTest, [front.url, "ams"])
      expect(r.code, r.stdout + r.stderr).toBe(1)
      expect(lineFor(r, "ams")).toMatch(/^ams\s+status=200\s+region=-\s+machine=-\s+FAIL body is not JSON: <html> <body>maintenance<\/body> <\/html>$/)
    }))

  it.effect("the exit code is the number of failed regions", () =>
    Effect.gen(function*() {
      const front = yield* Front
      const r = yield* run(smokeTest, [front.url, "iad", "fra", "ord", "syd", "ams"])
      expect(r.code, r.stdout + r.stderr).toBe(3)
      expect(r.lines.filter((l) => / FAIL /.test(l)).map((l) => l.split(/\s+/)[0])).toEqual(["fra", "syd", "ams"])
      expect(r.lines.at(-1)).toBe(`smoke-test: 3 of 5 regions FAILED at ${front.url}: fra syd ams`)
    }))

  it.effect("an unreachable base URL fails every region", () =>
    Effect.gen(function*() {
      const front = yield* Front
      const r = yield* run(smokeTest, ["--timeout", "2", front.deadUrl, "iad", "ord"])
      expect(r.code, r.stdout + r.stderr).toBe(2)
      for (const region of ["iad", "ord"]) {
        expect(lineFor(r, region)).toMatch(new RegExp(`^${region}\\s+status=000\\s+region=-\\s+machine=-\\s+FAIL unreachable \\(curl exit 7: .*\\)$`))
      }
      expect(r.lines.at(-1)).toBe(`smoke-test: 2 of 2 regions FAILED at ${front.deadUrl}: iad ord`)
    }))

  it.effect("a region that does not answer within --timeout fails (curl exit 28), the others still run", () =>
    Effect.gen(function*() {
      const front = yield* Front
      const started = Date.now()
      const r = yield* run(smokeTest, ["--timeout", "1", front.url, "slow", "iad"])
      expect(r.code, r.stdout + r.stderr).toBe(1)
      expect(lineFor(r, "slow")).toMatch(/^slow\s+status=000\s+.*FAIL unreachable \(curl exit 28: /)
      expect(lineFor(r, "iad")).toMatch(/\spass$/)
      expect(Date.now() - started).toBeLessThan(5_000)
    }))

  it.effect("bad usage exits 2 without region lines; --help exits 0", () =>
    Effect.gen(function*() {
      const front = yield* Front
      for (const args of [[], [front.url], ["not-a-url", "iad"], [front.url, "i a d"], ["--timeout", "x", front.url, "iad"], ["--nope", front.url, "iad"]]) {
        const r = yield* run(smokeTest, args)
        expect(r.code, `args ${JSON.stringify(args)}: ${r.stdout}${r.stderr}`).toBe(2)
        expect(r.stdout).toBe("")
        expect(r.stderr).toMatch(/usage: scripts\/smoke-test.sh/)
      }
      const help = yield* run(smokeTest, ["--help"])
      expect(help.code).toBe(0)
      expect(help.stdout).toMatch(/^usage: scripts\/smoke-test.sh \[--timeout SECONDS\] BASE_URL REGION\.\.\./)
    }))

  it.effect("deploy.sh: fly deploy with the config, then the smoke test in the regions of the started machines", () =>
    Effect.scoped(Effect.gen(function*() {
      const front = yield* Front
      const fly = yield* fakeFly
      const r = yield* run(deployScript, ["--", "--image-label", "test"], {
        FLY: fly.bin,
        SMOKE_BASE_URL: front.url,
        FAKE_MACHINES: machines(["ord", "started"], ["iad", "started"], ["syd", "stopped"], ["iad", "started"])
      })
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(fly.calls()).toEqual(["deploy --config fly.toml --image-label test", "machine list --app effect-relay --json"])
      expect(lineFor(r, "iad")).toMatch(/\spass$/)
      expect(lineFor(r, "ord")).toMatch(/\spass$/)
      expect(r.lines.at(-1)).toBe("deploy: done: effect-relay deployed and every region answers")
    })))

  it.effect("deploy.sh stops at the first failure: a failed fly deploy runs no smoke test; a failed smoke test is the exit code", () =>
    Effect.scoped(Effect.gen(function*() {
      const front = yield* Front
      const fly = yield* fakeFly
      const failedDeploy = yield* run(deployScript, [], { FLY: fly.bin, SMOKE_BASE_URL: front.url, FAKE_DEPLOY_RC: "3" })
      expect(failedDeploy.code).toBe(3)
      expect(failedDeploy.stderr).toMatch(/deploy: FAILED: fly deploy exited 3; smoke test not run/)
      expect(failedDeploy.stdout).not.toMatch(/status=/)
      expect(fly.calls()).toEqual(["deploy --config fly.toml"])

      const failedSmoke = yield* run(deployScript, [], { FLY: fly.bin, SMOKE_BASE_URL: front.url, SMOKE_REGIONS: "iad,fra syd" })
      expect(failedSmoke.code, failedSmoke.stdout + failedSmoke.stderr).toBe(2)
      expect(lineFor(failedSmoke, "fra")).toMatch(/FAIL wrong region/)
      expect(lineFor(failedSmoke, "syd")).toMatch(/FAIL status 503/)
      expect(failedSmoke.stderr).toMatch(/deploy: FAILED: smoke test exited 2/)
    })))

  it.effect("deploy-staging.sh deploys fly.staging.toml's app; with no started machine it smoke-tests primary_region", () =>
    Effect.scoped(Effect.gen(function*() {
      const front = yield* Front
      const fly = yield* fakeFly
      const r = yield* run(deployStaging, [], { FLY: fly.bin, SMOKE_BASE_URL: front.url, FAKE_MACHINES: "[]" })
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(fly.calls()).toEqual(["deploy --config fly.staging.toml", "machine list --app effect-relay-staging --json"])
      expect(lineFor(r, "iad")).toMatch(/^iad\s+status=200\s+region=iad\s+.*pass$/)
    })))
})
