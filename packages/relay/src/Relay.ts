/**
 * The whole relay as one Layer: HTTP surface, auth, tunnel registry, routing, drain. Needs a
 * `RelayConfig` and a `Directory`. Building it clears this machine's stale directory entries and
 * listens; releasing it (an interrupt, a signal through `runMain`) drains every tunnel through
 * its finalizers.
 */
import { Effect, Layer, Option } from "effect"
import { Auth } from "./auth/Auth.js"
import { SessionCookies } from "./auth/SessionCookie.js"
import { RelayAddress } from "./config/RelayAddress.js"
import { RelayConfig } from "./config/RelayConfig.js"
import { Directory } from "./directory/Directory.js"
import * as MemoryDirectory from "./directory/Memory.js"
import * as RedisDirectory from "./directory/Redis.js"
import { Drain, type DrainOptions } from "./Drain.js"
import { BodyBudgets } from "./http/BodyBudgets.js"
import { BrowserLogin } from "./http/BrowserLogin.js"
import { ClientRequests } from "./http/ClientRequests.js"
import { ClientSockets } from "./http/ClientSockets.js"
import { Endpoints } from "./http/Endpoints.js"
import { RelayServer } from "./http/RelayServer.js"
import { RouteAccess } from "./http/RouteAccess.js"
import { TunnelUpgrade } from "./http/TunnelUpgrade.js"
import { Holds } from "./routing/Holds.js"
import { PeerProxy } from "./routing/PeerProxy.js"
import { Router } from "./routing/Router.js"
import { Admission } from "./tunnel/Admission.js"
import { Draining } from "./tunnel/Draining.js"
import { TunnelRegistry } from "./tunnel/TunnelRegistry.js"

export const relayLayer = (options: DrainOptions = {}) =>
  Drain.layer(options).pipe(
    Layer.provideMerge(RelayServer.layer),
    Layer.provideMerge(Layer.mergeAll(ClientRequests.layer, ClientSockets.layer, TunnelUpgrade.layer, Endpoints.layer, BrowserLogin.layer)),
    Layer.provideMerge(RouteAccess.layer),
    Layer.provideMerge(Layer.mergeAll(Router.layer, PeerProxy.layer, BodyBudgets.layer, Holds.layer)),
    Layer.provideMerge(Layer.merge(TunnelRegistry.layer, Admission.layer)),
    Layer.provideMerge(Layer.mergeAll(Auth.layer, SessionCookies.layer)),
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
