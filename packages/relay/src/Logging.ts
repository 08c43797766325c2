import { logLevelConfig as levelConfig } from "@effect-relay/protocol"
import { Config, Effect, Layer, Logger, LogLevel, Option } from "effect"

export type LogFormat = "json" | "pretty"

export const logFormatConfig = Config.literal("json", "pretty")("LOG_FORMAT").pipe(Config.withDefault("json" as const))
/** LOG_LEVEL, when set; otherwise the CLI's own `--log-level` (or Info) applies. */
export const logLevelConfig = Config.option(levelConfig())

/**
 * JSON lines by default (one event per line, annotations as fields); `pretty`
 * for people at a terminal. LOG_LEVEL sets the minimum level.
 */
export const loggerLayer = (format: LogFormat): Layer.Layer<never> =>
  Layer.unwrapEffect(
    Effect.map(Effect.orElseSucceed(logLevelConfig, () => Option.none<LogLevel.LogLevel>()), (level) =>
      Layer.mergeAll(
        format === "pretty" ? Logger.pretty : Logger.json,
        Option.match(level, { onNone: () => Layer.empty, onSome: Logger.minimumLogLevel })
      ))
  )

/** The logger chosen by LOG_FORMAT and LOG_LEVEL. */
export const loggerFromEnv: Layer.Layer<never> = Layer.unwrapEffect(
  Effect.map(Effect.orElseSucceed(logFormatConfig, () => "json" as const), loggerLayer)
)
