import { Effect, Layer, Option } from "effect"
import { Directory } from "./Directory.js"
import * as RedisDirectory from "./directory/Redis.js"
import { RelayConfig } from "./RelayConfig.js"
import { Auth } from "./Auth.js"
import * as MemoryDirectory from "./directory/Memory.js"
import { Drain, type DrainOptions } from "./Drain.js"
import { Draining } from "./Draining.js"
import { RelayAddress } from "./RelayAddress.js"
import { PeerProxy } from "./PeerProxy.js"
import { RelayServer } from "./RelayServer.js"
import { Router } from "./Router.js"
import { TunnelRegistry } from "./TunnelRegistry.js"

/**
 * The whole relay as one Layer: HTTP surface, auth, tunnel registry, drain.
 * Needs a `RelayConfig` and a `Directory`. Building it clears this machine's
 * stale directory entries and listens; releasing it (an interrupt, a signal
 * through `runMain`) drains every tunnel through its finalizers.
 */
export const relayLayer = (options: DrainOptions = {}) =>
  Drain.layer(options).pipe(
    Layer.provideMerge(RelayServer.layer),
    Layer.provideMerge(Layer.merge(Router.layer, PeerProxy.layer)),
    Layer.provideMerge(TunnelRegistry.layer),
    Layer.provideMerge(Auth.layer),
    Layer.provideMerge(RelayAddress.layer),
    Layer.provideMerge(Draining.layer)
  )

export const RelayLive = relayLayer()

/** The relay with the in-process directory: a single relay, no shared store. */
export const RelayLiveMemory = RelayLive.pipe(Layer.provideMerge(MemoryDirectory.layer))

/** The directory the config asks for: Redis when `REDIS_URL` is set, else in memory. */
export const directoryLayer: Layer.Layer<Directory, never, RelayConfig> = Layer.unwrapEffect(
  Effect.map(RelayConfig, (config) =>
    Option.match(config.redisUrl, {
      onNone: () => Layer.effect(Directory, MemoryDirectory.make({ ttlMs: config.directoryTtlMs })),
      onSome: (url) => RedisDirectory.layer({ url, keyPrefix: config.redisKeyPrefix, ttlMs: config.directoryTtlMs })
    }))
)
