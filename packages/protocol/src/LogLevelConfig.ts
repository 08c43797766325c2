import { Config, ConfigError, Either, LogLevel } from "effect"

const names: Record<string, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None,
  off: LogLevel.None
}

/**
 * `LOG_LEVEL` as people write it (`warning`, `WARN`, `debug`...), shared by
 * the relay and the host agent so both CLIs read it the same way.
 */
export const logLevelConfig = (name = "LOG_LEVEL"): Config.Config<LogLevel.LogLevel> =>
  Config.string(name).pipe(
    Config.mapOrFail((value) => {
      const level = names[value.trim().toLowerCase()]
      return level !== undefined
        ? Either.right(level)
        : Either.left(ConfigError.InvalidData([], `expected one of ${Object.keys(names).join(", ")}, got "${value}"`))
    })
  )
