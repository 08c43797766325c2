import type { HostId } from "@effect-relay/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger } from "effect"
import { Directory } from "../src/directory/Directory.js"
import * as MemoryDirectory from "../src/directory/Memory.js"
import { RelayLive } from "../src/Relay.js"
import { testConfig } from "./support.js"

const entry = (hostId: string, owner: string) => ({
  hostId: hostId as HostId,
  owner,
  tunnelId: `t-${hostId}`,
  instanceId: `i-${hostId}`,
  connectedAt: 0,
  internalUrl: "http://127.0.0.1:1"
})

describe("startup clear", () => {
  it.live("a relay clears the entries its own {region}:{machineId} left behind before it listens, and logs how many", () =>
    Effect.gen(function*() {
      const directory = yield* MemoryDirectory.make()
      for (let i = 0; i < 5; i++) yield* directory.register(entry(`acme:stale${i}`, "test:m1"))
      yield* directory.register(entry("acme:elsewhere", "test:m2"))
      yield* directory.register(entry("acme:other-region", "other:m1"))
      const logs: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, message }) => {
          logs.push({ message, annotations: Object.fromEntries(annotations) })
        })
      )
      yield* Effect.scoped(
        Layer.build(RelayLive.pipe(Layer.provide(testConfig()), Layer.provide(Layer.succeed(Directory, directory)), Layer.provide(capture)))
      )
      const messages = logs.map((l) => String(l.message))
      const cleared = logs.find((l) => String(l.message) === "relay.startup_cleared")
      expect(cleared?.annotations.entries).toBe(5)
      expect(messages.indexOf("relay.startup_cleared")).toBeLessThan(messages.indexOf("relay.listening"))
      for (let i = 0; i < 5; i++) expect(yield* directory.lookup(`acme:stale${i}` as HostId)).toEqual([])
      expect(yield* directory.lookup("acme:elsewhere" as HostId)).toHaveLength(1)
      expect(yield* directory.lookup("acme:other-region" as HostId)).toHaveLength(1)
    }))
})
