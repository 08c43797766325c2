/**
 * A worker process of `npm run gameday` holding many hosts: each host is the
 * real host agent (`HostAgentLive`, one Layer per host, `tunnels` tunnels) with
 * every relay URL, forwarding to the game day's target. It follows each agent's
 * registered tunnels (`HostAgent.tunnels`: a session is Connected once its relay
 * registered it and said hello), reports how many hosts have one and all of
 * them, and, when asked, every time a host had none (`gaps`) and fewer than all
 * (`belowAll`).
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

/** Times with a count of tunnels under a threshold, per host: the open one's index in `list`. */
const gapLog = () => {
  const list: Array<TunnelGap> = []
  const open = new Map<string, number>()
  return {
    list,
    down: (hostId: string, at: number) => {
      if (!open.has(hostId)) open.set(hostId, list.push({ hostId, downAt: at, upAt: undefined }) - 1)
    },
    up: (hostId: string, at: number) => {
      const i = open.get(hostId)
      if (i === undefined) return
      list[i] = { ...list[i]!, upAt: at }
      open.delete(hostId)
    }
  }
}
/** No tunnel at all; fewer than wanted. */
const zero = gapLog()
const belowAll = gapLog()
/** Hosts with at least one tunnel; with all of them. */
let connected = 0
let full = 0
let total = 0
let statusTimer: NodeJS.Timeout | undefined

const reportStatus = () => {
  if (statusTimer !== undefined) return
  statusTimer = setTimeout(() => {
    statusTimer = undefined
    send({ type: "status", connected, full, total })
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
          tunnels: command.tunnels,
          resetOnDrain: command.settings.resetOnDrain,
          backoffCapMs: command.settings.backoffCapMs
        })
        const context = yield* Layer.buildWithScope(layer, scope)
        const agent = Context.get(context, HostAgent)
        // A gap opens when the count drops (not while the host first connects), closes when it is back.
        let count = 0
        yield* agent.tunnels.changes.pipe(
          Stream.map((sessions) => sessions.filter((s) => s._tag === "Connected").length),
          Stream.changes,
          Stream.runForEach((now) =>
            Effect.sync(() => {
              const at = Date.now()
              const wanted = command.tunnels
              if (count === 0 && now > 0) {
                connected++
                zero.up(hostId, at)
              } else if (count > 0 && now === 0) {
                connected--
                zero.down(hostId, at)
              }
              if (count < wanted && now >= wanted) {
                full++
                belowAll.up(hostId, at)
              } else if (count >= wanted && now < wanted) {
                full--
                belowAll.down(hostId, at)
              }
              count = now
              reportStatus()
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
          gaps: zero.list,
          belowAll: belowAll.list,
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
