import { testSecret } from "@effect-relay/testkit"
import { Context, Effect, Layer, Option, Redacted, Schedule } from "effect"
import { RelayConfig, type RelaySettings } from "../src/config/RelayConfig.js"
import { RelayLiveMemory } from "../src/Relay.js"
import { RelayServer } from "../src/http/RelayServer.js"
import { TunnelRegistry } from "../src/tunnel/TunnelRegistry.js"
import { Directory } from "../src/directory/Directory.js"

export const testSettings = (overrides: Partial<RelaySettings> = {}): RelaySettings => ({
  port: 0,
  bindHost: "127.0.0.1",
  region: "test",
  machineId: "m1",
  auth: { key: { _tag: "Secret", secret: Redacted.make(testSecret) }, issuer: Option.none(), audience: Option.none() },
  maxTokenLifetimeSeconds: 30 * 24 * 3600,
  maxBodyBytes: 10 * 1024 * 1024,
  pingIntervalMs: 30_000,
  pingMaxMissed: 3,
  requestTimeoutMs: 30_000,
  maxPendingPerTunnel: 1000,
  drainFlushMs: 500,
  drainDeadlineMs: 8000,
  redisUrl: Option.none(),
  redisKeyPrefix: "relay:",
  directoryTtlMs: 90_000,
  sweepIntervalMs: 30_000,
  routing: "proxy",
  internalUrl: Option.none(),
  peerSecret: Option.none(),
  ...overrides
})

export const testConfig = (overrides: Partial<RelaySettings> = {}) => RelayConfig.layer(testSettings(overrides))

/** Starts an in-process relay (memory directory) for the scope; returns its base URLs and services. */
export const startRelay = (overrides: Partial<RelaySettings> = {}) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(RelayLiveMemory.pipe(Layer.provide(testConfig(overrides))))
    const server = Context.get(context, RelayServer)
    return {
      port: server.port,
      http: `http://127.0.0.1:${server.port}`,
      ws: `ws://127.0.0.1:${server.port}`,
      registry: Context.get(context, TunnelRegistry),
      directory: Context.get(context, Directory)
    }
  })

/** Retries `check` every 20 ms until it succeeds, failing after `timeoutMs`. */
export const eventually = <A, E>(check: Effect.Effect<A, E>, timeoutMs = 5000) =>
  check.pipe(
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => new Error("condition not met in time") })
  )

/** fetch with a bearer token. */
export const get = (url: string, token?: string, init: RequestInit = {}) =>
  Effect.promise(() =>
    fetch(url, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string> ?? {}) } })
  )
