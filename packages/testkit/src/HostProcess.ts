import { Effect } from "effect"
import { hostBin, type LoggingProcess, spawnLogging } from "./RelayProcess.js"

/**
 * Starts `effect-relay-host` as a child process with `args` and `env` (JSON
 * logs), and waits for `waitFor` (default `tunnel.connected`; `null`: do not
 * wait). Killed (SIGKILL) when the scope closes if it is still running.
 */
export const startHostProcess = (options: {
  readonly args?: ReadonlyArray<string>
  readonly env?: Record<string, string>
  readonly waitFor?: string | null
}) =>
  Effect.acquireRelease(
    Effect.promise(async (): Promise<LoggingProcess> => {
      const proc = spawnLogging(hostBin, options.args ?? [], options.env ?? {})
      const waitFor = options.waitFor === undefined ? "tunnel.connected" : options.waitFor
      if (waitFor !== null) {
        await proc.waitForLog(waitFor, 20_000).catch((e) => {
          proc.child.kill("SIGKILL")
          throw e
        })
      }
      return proc
    }),
    (proc) =>
      Effect.promise(async () => {
        if (proc.child.exitCode === null && proc.child.signalCode === null) {
          proc.child.kill("SIGKILL")
          await proc.exited
        }
      })
  )
