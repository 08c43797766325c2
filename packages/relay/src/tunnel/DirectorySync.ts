/**
 * Keeps this relay's part of the directory true to its tunnels: the entries a predecessor with
 * the same machine id left behind are cleared before anything of ours is written; each tunnel's
 * entry is written (with retries) when it opens and removed (compare-and-delete) when it ends;
 * live entries are refreshed at most once a ping period; failed writes are repaired on the next
 * sweep; everything is written back when the store comes back; expired entries are swept.
 *
 * It belongs to the tunnel registry, which tells it which tunnels are live.
 */
import { type Context, Effect, Schedule, type Scope } from "effect"
import type { RelayAddress } from "../config/RelayAddress.js"
import type { RelaySettings } from "../config/RelayConfig.js"
import type { Directory, DirectoryEntry, DirectoryUnavailable } from "../directory/Directory.js"
import type { Draining } from "./Draining.js"
import type { Tunnel } from "./Tunnel.js"

export interface DirectorySync {
  /**
   * Writes a new tunnel's entry (after the start-up clear), three tries in all; returns it, and the
   * entries of an older instance of the host it replaced on other relays.
   */
  readonly register: (tunnel: Tunnel) => Effect.Effect<{ readonly entry: DirectoryEntry; readonly replaced: ReadonlyArray<DirectoryEntry> }, DirectoryUnavailable>
  /** Removes a tunnel's entry if it is still that tunnel's; a failure is logged. */
  readonly unregister: (entry: DirectoryEntry) => Effect.Effect<void>
  /** Refreshes (or restores) live tunnels' entries; failures are remembered and repaired by the sweep. */
  readonly refresh: (tunnels: Iterable<Tunnel>) => Effect.Effect<void>
}

export interface DirectorySyncDeps {
  readonly config: RelaySettings
  readonly directory: Context.Tag.Service<typeof Directory>
  readonly address: Context.Tag.Service<typeof RelayAddress>
  readonly draining: Context.Tag.Service<typeof Draining>
  /** `{region}:{machineId}`: whose entries these are. */
  readonly owner: string
  /** Whether this tunnel is still the live one for its host on this relay. */
  readonly isLive: (tunnel: Tunnel) => boolean
  /** The live tunnels now. */
  readonly live: () => Iterable<Tunnel>
  /** A tunnel's heartbeat found it replaced (a newer instance of its host registered): close it. */
  readonly onReplaced: (tunnel: Tunnel) => Effect.Effect<void>
}

/** Three tries in all: 100 ms, then 200 ms apart. */
const threeTries = Schedule.exponential("100 millis").pipe(Schedule.intersect(Schedule.recurs(2)))

/** The sync for the scope's life: its clear, repair and sweep loops are forked into the scope. */
export const make = (deps: DirectorySyncDeps): Effect.Effect<DirectorySync, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { config, directory, address, draining, owner } = deps
    /** Tunnels whose last directory write failed: repaired on the next sweep. */
    const dirty = new Set<Tunnel>()

    const ensureCleared = yield* startupClear(directory, owner)

    const entryOf = (tunnel: Tunnel) =>
      Effect.map(address.get, ({ internalUrl }): DirectoryEntry => ({
        hostId: tunnel.hostId,
        owner,
        tunnelId: tunnel.tunnelId,
        instanceId: tunnel.instanceId,
        connectedAt: tunnel.connectedAt,
        internalUrl
      }))

    const register = (tunnel: Tunnel) =>
      Effect.flatMap(entryOf(tunnel), (entry) =>
        ensureCleared.pipe(
          Effect.zipRight(directory.register(entry)),
          Effect.retry(threeTries),
          Effect.map((replaced) => ({ entry, replaced }))
        ))

    const unregister = (entry: DirectoryEntry) =>
      directory.unregister(entry).pipe(
        Effect.asVoid,
        Effect.catchTag("DirectoryUnavailable", (e) => Effect.logWarning("tunnel.unregister_failed", e.message))
      )

    const refreshOne = (tunnel: Tunnel) =>
      Effect.gen(function*() {
        if (draining.isDraining() || !deps.isLive(tunnel) || tunnel.isEnded()) return dirty.delete(tunnel)
        const result = yield* directory.heartbeat(yield* entryOf(tunnel)).pipe(Effect.either)
        if (result._tag === "Left") return dirty.add(tunnel)
        dirty.delete(tunnel)
        if (result.right === "restored") yield* Effect.logInfo("tunnel.directory_restored")
        if (result.right === "replaced") {
          yield* Effect.logInfo("tunnel.replaced_elsewhere")
          yield* deps.onReplaced(tunnel)
        }
      }).pipe(Effect.annotateLogs({ hostId: tunnel.hostId, tunnelId: tunnel.tunnelId }))

    const refresh = (tunnels: Iterable<Tunnel>) => Effect.forEach(tunnels, refreshOne, { concurrency: 64, discard: true })

    // When the store comes back after being unreachable (it may have lost everything), every live
    // tunnel's entry is written back at once, not on the next sweep or heartbeat.
    yield* Effect.gen(function*() {
      let available = directory.isAvailable()
      while (true) {
        yield* Effect.sleep("250 millis")
        const now = directory.isAvailable()
        if (now && !available) {
          const live = [...deps.live()]
          yield* Effect.logInfo("directory.available_again").pipe(Effect.annotateLogs({ tunnels: live.length }))
          yield* refresh(live)
        }
        available = now
      }
    }).pipe(Effect.forkScoped)

    // Every relay sweeps expired entries, and repairs its own live tunnels' entries whose writes
    // failed: within one period of the store coming back.
    yield* Effect.gen(function*() {
      const swept = yield* directory.sweep
      if (swept > 0) yield* Effect.logInfo("directory.swept").pipe(Effect.annotateLogs({ entries: swept }))
      yield* refresh([...dirty])
    }).pipe(
      Effect.catchAll((e) => Effect.logWarning("directory.sweep_failed", e.message)),
      Effect.repeat(Schedule.spaced(config.sweepIntervalMs)),
      Effect.delay(config.sweepIntervalMs),
      Effect.forkScoped
    )

    return { register, unregister, refresh }
  })

/**
 * Clears the entries this machine id left behind (a SIGKILLed predecessor) before anything of
 * ours is written. Single-flight: registrations wait for it. Tried three times at start-up; when
 * the store is down then, retried in the background until it succeeds.
 */
const startupClear = (directory: Context.Tag.Service<typeof Directory>, owner: string) =>
  Effect.gen(function*() {
    let cleared = false
    const clearing = yield* Effect.makeSemaphore(1)
    const ensureCleared = clearing.withPermits(1)(Effect.suspend(() =>
      cleared ? Effect.void : directory.clearOwn(owner).pipe(
        Effect.tap((entries) => Effect.logInfo("relay.startup_cleared").pipe(Effect.annotateLogs({ entries, owner }))),
        Effect.tap(() => Effect.sync(() => cleared = true)),
        Effect.asVoid
      )
    ))
    const first = yield* ensureCleared.pipe(Effect.retry(threeTries), Effect.either)
    if (first._tag === "Left") {
      yield* Effect.logError("relay.startup_clear_failed", first.left.message)
      yield* ensureCleared.pipe(
        Effect.tapError((e) => Effect.logWarning("relay.startup_clear_failed", e.message)),
        Effect.retry(Schedule.exponential("500 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
        Effect.forkScoped
      )
    }
    return ensureCleared
  })
