import { Config, Logger, LogLevel } from "effect"
import type { Layer } from "effect"
import { logLevelConfig } from "@effect-relay/protocol"

/** How the CLI logs: JSON lines (default) or a pretty format for people. */
export type LogFormat = "json" | "pretty"

export const LoggingEnv = {
  format: Config.literal("json", "pretty")("LOG_FORMAT").pipe(Config.withDefault<LogFormat>("json")),
  level: logLevelConfig().pipe(Config.withDefault(LogLevel.Info))
} as const

/** Replaces the default logger with the chosen format. */
export const logFormatLayer = (format: LogFormat): Layer.Layer<never> =>
  format === "pretty" ? Logger.pretty : Logger.json
