/**
 * A worker process of the game day: a TypeScript module run by node (with
 * tsx) as a child with an IPC channel (`spawnChild`), seen from the parent:
 * send it commands, wait for its events, stop it. Its stdout and stderr go to
 * a log file. An event `{type: "error"}` from the worker fails whatever waits.
 */
import { spawnChild, tsx } from "../lib/processes.js"

export interface ChildWorker<Command, Event extends { readonly type: string }> {
  readonly pid: number
  readonly name: string
  readonly send: (command: Command) => void
  /** Sends `command` and waits for the event of `type` that answers it. */
  readonly ask: <T extends Event["type"]>(command: Command, type: T, timeoutMs: number) => Promise<Extract<Event, { type: T }>>
  /** Called on every event. */
  readonly onEvent: (listener: (event: Event) => void) => void
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** SIGKILL now if still running, and wait (at most 5 s) for the exit. */
  readonly kill: () => Promise<void>
}

/** Node flags for the workers from GAMEDAY_WORKER_NODE_ARGS, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile them. */
const extraNodeArgs = () => process.env.GAMEDAY_WORKER_NODE_ARGS?.split(" ").filter((a) => a !== "") ?? []

export const startChildWorker = <Command extends object, Event extends { readonly type: string }>(
  name: string,
  modulePath: string,
  logFile: string
): ChildWorker<Command, Event> => {
  const child = spawnChild({ name, args: [...extraNodeArgs(), ...tsx(modulePath)], logFile, ipc: true })

  /** The first event of `type` received from now on. */
  const waitFor = <T extends Event["type"]>(type: T, timeoutMs: number) =>
    child.waitForMessage(`"${type}"`, (message) => {
      const event = message as Event
      if (event.type === "error") throw new Error((event as unknown as { message: string }).message)
      return event.type === type ? (event as Extract<Event, { type: T }>) : undefined
    }, timeoutMs)

  return {
    pid: child.pid,
    name,
    send: (command) => child.send(command),
    ask: (command, type, timeoutMs) => {
      const answer = waitFor(type, timeoutMs)
      child.send(command)
      return answer
    },
    onEvent: (listener) => child.onMessage((message) => listener(message as Event)),
    exited: child.exited,
    kill: child.kill
  }
}
