/**
 * The `effect-relay-host` command: every flag falls back to its environment variable, then to
 * its default (see `HostSettings.ts`); the handler runs the host agent Layer until the program
 * is interrupted.
 */
import * as Command from "@effect/cli/Command"
import { Logging, Setting } from "@effect-relay/protocol"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { HostAgentLive } from "./HostAgent.js"
import { hostAgentSettings, hostProcessSettings } from "./HostSettings.js"
import { MetricsServerLive } from "./MetricsServer.js"

export const command = Command.make(
  "effect-relay-host",
  { ...Setting.options(hostAgentSettings), ...Setting.options(hostProcessSettings) },
  ({ logFormat, metricsBind, metricsPort, relayUrls, ...config }) => {
    const agent = HostAgentLive({ ...config, relayUrl: relayUrls })
    return Layer.launch(Option.match(metricsPort, {
      onNone: () => agent,
      onSome: (port) => MetricsServerLive({ port, bindHost: metricsBind }).pipe(Layer.provideMerge(agent))
    })).pipe(
      Effect.tapErrorCause((cause) => Effect.logFatal("host.failed", cause)),
      Effect.annotateLogs({ hostId: config.hostId }),
      Effect.provide(Logging.formatLayer(logFormat))
    )
  }
).pipe(
  Command.withDescription(
    "Dials out to an effect-relay relay over a WebSocket tunnel and forwards its HTTP requests and WebSocket channels to a local service. Reconnects forever; SIGINT/SIGTERM closes the tunnel (1000) and exits. The minimum log level is --log-level, else LOG_LEVEL, else info."
  )
)

/** Runs the command on `process.argv`-shaped arguments. */
export const run = Command.run(command, { name: "effect-relay-host", version: "0.1.0" })
