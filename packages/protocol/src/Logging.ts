/**
 * How the relay and the host agent log: JSON lines (`Logger.json`, one event a line, for log
 * collectors), or a pretty format for a person at a terminal. The default follows where the
 * output goes: pretty when stdout is a terminal, JSON otherwise; `LOG_FORMAT` (or
 * `--log-format`) wins. `LOG_LEVEL` sets the minimum level.
 */
import { Config, Effect, Layer, Logger, type LogLevel, Option } from "effect"
import { logLevelConfig } from "./LogLevelConfig.js"
import * as Setting from "./Settings.js"

export type LogFormat = "json" | "pretty"

export const logFormatSetting = Setting.choice({
  flag: "log-format",
  env: "LOG_FORMAT",
  choices: ["json", "pretty"] as const,
  default: Config.sync((): LogFormat => (process.stdout.isTTY ? "pretty" : "json")),
  defaultText: "pretty on a terminal, else json",
  description: "json (one event per line) or pretty (for people)."
})

/** LOG_LEVEL when set. */
export const logLevelFromEnv: Effect.Effect<Option.Option<LogLevel.LogLevel>> = Effect.orElseSucceed(
  Config.option(logLevelConfig()),
  () => Option.none()
)

/** The logger of that format. */
export const formatLayer = (format: LogFormat): Layer.Layer<never> => (format === "pretty" ? Logger.pretty : Logger.json)

/** The logger of that format, with LOG_LEVEL's minimum when set. */
export const loggerLayer = (format: LogFormat): Layer.Layer<never> =>
  Layer.unwrapEffect(
    Effect.map(logLevelFromEnv, (level) =>
      Layer.mergeAll(
        formatLayer(format),
        Option.match(level, { onNone: () => Layer.empty, onSome: Logger.minimumLogLevel })
      ))
  )
