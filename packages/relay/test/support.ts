import { redisUrl, testSecret } from "@effect-relay/testkit"
import { Context, Effect, Layer, Option, Redacted, Schedule } from "effect"
import { defaultRelaySettings, RelayConfig, type RelaySettings } from "../src/config/RelayConfig.js"
import { directoryLayer, relayLayer, RelayLiveMemory } from "../src/Relay.js"
import { RelayServer } from "../src/http/RelayServer.js"
import { TunnelRegistry } from "../src/tunnel/TunnelRegistry.js"
import { Directory } from "../src/directory/Directory.js"

/** A relay for tests: every setting at its default (auth with the test secret), on a free port of 127.0.0.1. */
export const testSettings = (overrides: Partial<RelaySettings> = {}): RelaySettings => ({
  ...defaultRelaySettings({ key: { _tag: "Secret", secret: Redacted.make(testSecret) }, issuer: Option.none(), audience: Option.none() }),
  port: 0,
  bindHost: "127.0.0.1",
  region: "test",
  machineId: "m1",
  routing: "proxy",
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

/** The peer secret of every relay `startRedisRelay` starts. */
export const inProcessPeerSecret = "peer-secret-for-in-process-relays-0123"

/**
 * An in-process relay on the Redis directory under `prefix`, in proxy routing with a peer secret,
 * as one machine (`machineId`) of region iad: several of them under one prefix are one deployment.
 * Stopped when the scope closes.
 */
export const startRedisRelay = (prefix: string, machineId: string, overrides: Partial<RelaySettings> = {}) =>
  Effect.gen(function*() {
    const settings = testSettings({
      region: "iad",
      machineId,
      redisUrl: Option.some(Redacted.make(redisUrl())),
      redisKeyPrefix: prefix,
      peerSecret: Option.some(Redacted.make(inProcessPeerSecret)),
      routing: "proxy",
      ...overrides
    })
    const context = yield* Layer.build(relayLayer().pipe(Layer.provideMerge(directoryLayer), Layer.provide(RelayConfig.layer(settings))))
    const port = Context.get(context, RelayServer).port
    return { port, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}` }
  })
