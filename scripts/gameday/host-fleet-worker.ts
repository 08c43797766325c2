/**
 * A worker process of `npm run gameday` holding many hosts: each host is the
 * real host agent (`HostAgentLive`, one Layer per host) with every relay URL,
 * forwarding to the game day's target. It reports how many tunnels are open
 * and, when asked, every time a host's tunnel was not open (from the end of
 * one tunnel to the opening of the next).
 *
 * Driven over IPC (see `messages.ts`): "start", "report", "stop".
 * It exits when told to stop, or at once when the parent goes away.
 */
import { HostAgent, HostAgentLive } from "@effect-relay/host"
import { Context, Effect, Exit, Layer, Logger, LogLevel, Scope, Stream } from "effect"
import { monitorEventLoopDelay } from "node:perf_hooks"
import type { FleetCommand, FleetEvent, TunnelGap } from "./messages.js"

const send = (event: FleetEvent) => {
  if (process.connected) process.send!(event)
}

// Without a parent there is nothing to report to: never linger as an orphan.
process.on("disconnect", () => process.exit(0))

const loopDelay = monitorEventLoopDelay({ resolution: 10 })
loopDelay.enable()

const gaps: Array<TunnelGap> = []
/** Index in `gaps` of each host's open gap (the host is reconnecting). */
const openGap = new Map<string, number>()
let connected = 0
let total = 0
let statusTimer: NodeJS.Timeout | undefined

const reportStatus = () => {
  if (statusTimer !== undefined) return
  statusTimer = setTimeout(() => {
    statusTimer = undefined
    send({ type: "status", connected, total })
  }, 50)
}

const start = (command: Extract<FleetCommand, { type: "start" }>, scope: Scope.CloseableScope) =>
  Effect.forEach(
    command.hostIds,
    (hostId) =>
      Effect.gen(function*() {
        const layer = HostAgentLive({
          relayUrl: command.relayUrls,
          hostId,
          token: command.token,
          targetUrl: command.targetUrl,
          resetOnDrain: command.settings.resetOnDrain,
          backoffCapMs: command.settings.backoffCapMs
        })
        const context = yield* Layer.buildWithScope(layer, scope)
        const agent = Context.get(context, HostAgent)
        let wasConnected = false
        yield* agent.state.changes.pipe(
          Stream.runForEach((state) =>
            Effect.sync(() => {
              const now = Date.now()
              if (state._tag === "Connected" && !wasConnected) {
                wasConnected = true
                connected++
                const open = openGap.get(hostId)
                if (open !== undefined) {
                  gaps[open] = { ...gaps[open]!, upAt: now }
                  openGap.delete(hostId)
                }
                reportStatus()
              } else if (state._tag === "Connecting" && wasConnected) {
                wasConnected = false
                connected--
                openGap.set(hostId, gaps.push({ hostId, downAt: now, upAt: undefined }) - 1)
                reportStatus()
              }
            })
          ),
          Effect.forkIn(scope)
        )
      }),
    { concurrency: command.startConcurrency, discard: true }
  )

const main = Effect.gen(function*() {
  const scope = yield* Scope.make()
  const run = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.runPromise(effect.pipe(Effect.provide(quietLogs))).catch((e) => send({ type: "error", message: String(e) }))

  process.on("message", (message) => {
    const command = message as FleetCommand
    switch (command.type) {
      case "start":
        total = command.hostIds.length
        void run(start(command, scope))
        return
      case "measure":
        loopDelay.reset()
        return
      case "report":
        send({
          type: "report",
          gaps,
          eventLoopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 }
        })
        return
      case "stop":
        // Releasing each agent closes its tunnel with 1000.
        void run(Scope.close(scope, Exit.void)).then(() => {
          send({ type: "stopped" })
          setTimeout(() => process.exit(0), 50)
        })
        return
    }
  })
})

/**
 * JSON lines in the worker's log file: warnings and errors only, unless GAMEDAY_HOST_LOG_LEVEL
 * asks for more (`info` shows every connect, drain and reconnect delay of every host).
 */
const wanted = (process.env.GAMEDAY_HOST_LOG_LEVEL ?? "warn").toLowerCase().replace(/^warning$/, "warn")
const level = LogLevel.allLevels.find((l) => l.label.toLowerCase() === wanted)
const quietLogs = Layer.mergeAll(Logger.json, Logger.minimumLogLevel(level ?? LogLevel.Warning))

Effect.runSync(main)
