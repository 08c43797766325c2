import { Layer } from "effect"
import { Auth } from "./Auth.js"
import * as MemoryDirectory from "./directory/Memory.js"
import { RelayAddress } from "./RelayAddress.js"
import { RelayServer } from "./RelayServer.js"
import { TunnelRegistry } from "./TunnelRegistry.js"

/**
 * The whole relay as one Layer: HTTP surface, auth, tunnel registry. Needs a
 * `RelayConfig` and a `Directory`. Building it listens; releasing it closes
 * every tunnel through its finalizers.
 */
export const RelayLive = RelayServer.layer.pipe(
  Layer.provideMerge(TunnelRegistry.layer),
  Layer.provideMerge(Auth.layer),
  Layer.provideMerge(RelayAddress.layer)
)

/** The relay with the in-process directory: a single relay, no shared store. */
export const RelayLiveMemory = RelayLive.pipe(Layer.provideMerge(MemoryDirectory.layer))
