import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, type Console, Deferred, Effect, Layer, Queue } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { run as runCli } from "../src/Cli.js"
import { httpServer, wsServer } from "./servers.js"

const platform = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)
const run = runCli

/** A Console that keeps what the CLI prints (help, errors). */
const capture = Effect.gen(function*() {
  const base = yield* Effect.console
  const lines: Array<string> = []
  const keep = (...args: ReadonlyArray<unknown>) => Effect.sync(() => void lines.push(args.join(" ")))
  const console: Console.Console = { ...base, log: keep, error: keep }
  return {
    output: () => lines.join("\n"),
    use: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.withConsole(effect, console)
  }
})

const bin = fileURLToPath(new URL("../bin/effect-relay-host.js", import.meta.url))

interface Run {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Deferred.Deferred<number | null>
}

const spawnBin = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.sync((): Run => {
      // The bin itself, not `node bin`: its shebang and executable bit are part of what is tested.
      const child = spawn(bin, args, {
        env: { PATH: process.env.PATH ?? "", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      let err = ""
      child.stdout!.on("data", (chunk) => (out += chunk))
      child.stderr!.on("data", (chunk) => (err += chunk))
      const exited = Deferred.unsafeMake<number | null>(undefined as never)
      child.on("exit", (code) => Deferred.unsafeDone(exited, Effect.succeed(code)))
      return { child, exited, stdout: () => out, stderr: () => err }
    }),
    (run) => Effect.sync(() => run.child.exitCode === null && run.child.kill("SIGKILL"))
  )

const exitCode = (run: Run) =>
  Deferred.await(run.exited).pipe(Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => new Error("still running") }))

describe("effect-relay-host CLI", () => {
  it.effect("--help lists every flag with its env var", () =>
    Effect.gen(function*() {
      const { output, use } = yield* capture
      yield* run(["node", "effect-relay-host", "--help"]).pipe(use, Effect.provide(platform))
      const help = output()
      for (
        const [flag, env] of [
          ["--relay", "RELAY_URL"],
          ["--host-id", "HOST_ID"],
          ["--token", "RELAY_TOKEN"],
          ["--target", "TARGET_URL"],
          ["--tunnels", "TUNNELS"],
          ["--connect-timeout-ms", "CONNECT_TIMEOUT_MS"],
          ["--watchdog-ms", "WATCHDOG_MS"],
          ["--request-timeout-ms", "REQUEST_TIMEOUT_MS"],
          ["--max-body-bytes", "MAX_BODY_BYTES"],
          ["--ws-queue-frames", "WS_QUEUE_FRAMES"],
          ["--drain-jitter-ms", "DRAIN_JITTER_MS"],
          ["--backoff-base-ms", "BACKOFF_BASE_MS"],
          ["--backoff-cap-ms", "BACKOFF_CAP_MS"],
          ["--backoff-jitter", "BACKOFF_JITTER"],
          ["--reset-on-drain", "RESET_ON_DRAIN"],
          ["--metrics-port", "METRICS_PORT"],
          ["--metrics-bind", "METRICS_BIND"],
          ["--log-format", "LOG_FORMAT"]
        ]
      ) {
        expect(help).toContain(flag)
        expect(help).toContain(env)
      }
    }))

  it.effect("missing or invalid settings fail with a message naming them", () =>
    Effect.gen(function*() {
      const missing = yield* capture
      yield* run(["node", "effect-relay-host"]).pipe(
        missing.use,
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
        Effect.provide(platform),
        Effect.flip
      )
      expect(missing.output()).toContain("--host-id")
      // Everything but the relay: the message names --relay and RELAY_URL.
      const noRelay = new Map([["HOST_ID", "acme:x"], ["RELAY_TOKEN", "t"], ["TARGET_URL", "http://127.0.0.1:2"]])
      const missingRelay = yield* capture
      yield* run(["node", "effect-relay-host"]).pipe(
        missingRelay.use,
        Effect.withConfigProvider(ConfigProvider.fromMap(noRelay)),
        Effect.provide(platform),
        Effect.flip
      )
      expect(missingRelay.output()).toContain("--relay (or RELAY_URL) is required")

      const invalid = yield* capture
      const env = new Map([["RELAY_URL", "http://127.0.0.1:1"], ["RELAY_TOKEN", "t"], ["TARGET_URL", "http://127.0.0.1:2"]])
      yield* run(["node", "effect-relay-host", "--host-id", "no-colon"]).pipe(
        invalid.use,
        Effect.withConfigProvider(ConfigProvider.fromMap(env)),
        Effect.provide(platform),
        Effect.flip
      )
      expect(invalid.output()).toContain("{orgId}:{name}")
    }))

  it.scopedLive("connects from env vars, logs JSON without the token, and SIGINT closes the tunnel with 1000 and exits 0", () =>
    Effect.gen(function*() {
      const relay = yield* wsServer()
      const tunnels = yield* Queue.unbounded<Deferred.Deferred<number>>()
      relay.wss.on("connection", (socket) => {
        const closed = Deferred.unsafeMake<number>(undefined as never)
        socket.on("close", (code) => Deferred.unsafeDone(closed, Effect.succeed(code)))
        Queue.unsafeOffer(tunnels, closed)
      })
      const target = yield* httpServer((_req, res) => res.end("ok"))
      const host = yield* spawnBin(["--host-id", "acme:cli"], {
        RELAY_URL: relay.url,
        RELAY_TOKEN: "cli-secret-token",
        TARGET_URL: target.url
      })
      const closed = yield* Queue.take(tunnels).pipe(
        Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => new Error(`no tunnel; stderr: ${host.stderr()}`) })
      )
      // Wait for the connected log line, then interrupt.
      while (!host.stdout().includes("tunnel.connected")) yield* Effect.sleep("20 millis")
      host.child.kill("SIGINT")
      expect(yield* exitCode(host)).toBe(0)
      expect(yield* Deferred.await(closed)).toBe(1000)

      const lines = host.stdout().trim().split("\n").map((line) => JSON.parse(line))
      const connected = lines.find((line) => line.message === "tunnel.connected")
      expect(connected.annotations).toMatchObject({ hostId: "acme:cli", relay: `${relay.url}/` })
      expect(host.stdout()).not.toContain("cli-secret-token")
    }))
})
