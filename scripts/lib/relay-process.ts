/**
 * A relay (`effect-relay serve`, the real CLI) as a child process of a script,
 * on 127.0.0.1, started through `spawnChild`: its JSON log lines are kept
 * (`logs`), and so is any other output (`other`: start-up failures show there).
 */
import { type LogLine, messageOf, relayBin } from "@effect-relay/testkit"
import { Effect } from "effect"
import { type Child, spawnChild } from "./processes.js"

export interface RelayProcess {
  readonly child: Child
  readonly logs: Array<LogLine>
  readonly other: Array<string>
  /** The first log line with this message since the relay started. */
  readonly waitForLog: (message: string, timeoutMs: number) => Promise<LogLine>
}

/** A JSON log line (`at`: ms since `spawnedAt`), or undefined for any other output. */
const logLine = (text: string, spawnedAt: number): LogLine | undefined => {
  try {
    const parsed: unknown = JSON.parse(text)
    if (parsed !== null && typeof parsed === "object" && "message" in parsed) return { ...(parsed as Omit<LogLine, "at">), at: Date.now() - spawnedAt }
  } catch {
    // not a log line
  }
  return undefined
}

/** Starts a relay on `port` (0: any free one) with `env` added to this process's, and `nodeArgs` (a profiler, say) before the bin. */
export const spawnRelay = (name: string, port: number, env: Record<string, string>, nodeArgs: ReadonlyArray<string> = []): RelayProcess => {
  const child = spawnChild({
    name,
    args: [...nodeArgs, relayBin, "serve", "--port", String(port), "--bind", "127.0.0.1"],
    env: { LOG_FORMAT: "json", ...env }
  })
  const logs: Array<LogLine> = []
  const other: Array<string> = []
  child.onLine((text) => {
    const line = logLine(text, child.spawnedAt)
    if (line !== undefined) logs.push(line)
    else if (text.trim() !== "") other.push(text)
  })
  const waitForLog = (message: string, timeoutMs: number) =>
    child.waitForLine(`"${message}" log`, (text) => {
      const line = logLine(text, child.spawnedAt)
      return line !== undefined && messageOf(line) === message ? line : undefined
    }, timeoutMs)
  return { child, logs, other, waitForLog }
}

export interface ListeningRelay extends RelayProcess {
  readonly port: number
  readonly http: string
  readonly ws: string
}

/** A relay on a free port, listening once this succeeds; SIGKILLed when the scope closes. */
export const startRelay = (env: Record<string, string>, nodeArgs: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(
    Effect.promise(async (): Promise<ListeningRelay> => {
      const relay = spawnRelay("relay", 0, env, nodeArgs)
      const listening = await relay.waitForLog("relay.listening", 20_000).catch(async (e) => {
        // Never leave a relay behind that did not come up.
        await relay.child.kill()
        throw e
      })
      const port = Number(listening.annotations.port)
      return { ...relay, port, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}` }
    }),
    (relay) => Effect.promise(relay.child.kill)
  )
