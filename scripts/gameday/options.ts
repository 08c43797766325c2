/**
 * What a game day runs: its flags (with `--help`), the kinds of round, and
 * the timings of a round that follow from the flags.
 */
import * as path from "node:path"
import { flags, repoRoot } from "../lib/bench.js"
import type { HostSettings } from "./messages.js"

export const roundKinds = {
  drain: { signal: "SIGINT", relays: "pair", settings: { resetOnDrain: true, backoffCapMs: 5_000 } },
  sigkill: { signal: "SIGKILL", relays: "pair", settings: { resetOnDrain: true, backoffCapMs: 5_000 } },
  "drain-prefix-backoff": { signal: "SIGINT", relays: "pair", settings: { resetOnDrain: false, backoffCapMs: 30_000 } },
  // The control: the same hosts and load with no restart, so what the restarts cost can be told
  // apart from what the load alone costs on this machine. Not in the default rounds.
  steady: { signal: undefined, relays: "pair", settings: { resetOnDrain: true, backoffCapMs: 5_000 } },
  // One relay with the in-memory directory, drained and restarted in place, one tunnel per host:
  // what a deployment without a second relay gets. Not in the default rounds.
  "single-relay": { signal: "SIGINT", relays: "single", tunnels: 1, settings: { resetOnDrain: true, backoffCapMs: 5_000 } }
} as const satisfies Record<string, RoundKind>

export interface RoundKind {
  /** How each relay is stopped; none in the steady round. */
  readonly signal: "SIGINT" | "SIGKILL" | undefined
  /** `pair`: relays a and b on the Redis directory; `single`: relay s alone, in-memory directory. */
  readonly relays: "pair" | "single"
  /** Tunnels per host when the round fixes it (else `--tunnels`). */
  readonly tunnels?: number
  readonly settings: HostSettings
}

export type RoundName = keyof typeof roundKinds
const defaultRounds: ReadonlyArray<RoundName> = ["drain", "sigkill"]

const help = `npm run gameday [-- flags]: rolling restart of two relays (proxy routing, shared Redis directory) under load.
  --hosts     host agents (real HostAgentLive, one per host, in --workers processes)
  --tunnels   tunnels each host agent holds (its --tunnels; default 2, one per relay); 1 for the
              one-tunnel comparison. A host is "back" once all its tunnels are registered
  --rate      requests per second over all hosts, alternating between the relays
  --rounds    comma-separated, run in this order: ${Object.keys(roundKinds).join(", ")}
              (default ${defaultRounds.join(",")}; drain: SIGINT a then b; sigkill: SIGKILL a then b;
              drain-prefix-backoff: SIGINT with the backoff from before drains were handled;
              steady: the same hosts and load without any restart, the control;
              single-relay: one relay alone, in-memory directory, one tunnel per host, drained and
              restarted in place)
  --duration  seconds each round is measured at least (the restarts happen inside; longer if they need it)
  --gate      seconds a rolling restart waits, after a relay is ready again, for every host to be
              back to all its tunnels before it signals the next relay (0: only /ready)
  --workers   host worker processes
  --out       directory for gameday-<timestamp>.json
The load generator is a plain load balancer: relays in turn, no /ready check, a GET refused or
reset before any response byte sent once more to the other relay (counted, not failed).
Set REDIS_URL to use an existing Redis (keys under a fresh prefix, removed afterwards); else a private redis-server is started.
Logs of the relays, host workers and load generator go to a temporary directory (printed). For investigating:
GAMEDAY_HOST_LOG_LEVEL=info logs every host's connects, drains and reconnect delays (default warn);
GAMEDAY_WORKER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" passes Node flags to the worker processes.`

export interface GamedayOptions {
  readonly hosts: number
  /** Tunnels per host agent, unless a round fixes it. */
  readonly tunnels: number
  readonly rate: number
  readonly rounds: ReadonlyArray<RoundName>
  /** Seconds each round is measured at least. */
  readonly duration: number
  readonly workers: number
  /** Seconds a rolling restart waits for every host to be back to all its tunnels before the next relay. */
  readonly gate: number
  readonly out: string
  /** The org of every host and token. */
  readonly org: string
  /** Tunnels per host in a round of this kind. */
  readonly tunnelsFor: (kind: RoundKind) => number
  readonly hostIds: ReadonlyArray<string>
  /** How often one host gets a request when the load goes round all of them. */
  readonly spacingMs: number
  /** Long enough for every host to have answered at least once before a round is measured. */
  readonly warmupMs: number
  /** Steady load before the first restart of a round. */
  readonly leadMs: number
  /** After every host is back: each gets requested at least twice more before the round ends. */
  readonly settleMs: number
  /** How long hosts may take to come back after the last restart before the round ends anyway. */
  readonly recoveryTimeoutMs: number
  readonly requestTimeoutMs: number
}

/** Reads the flags (`--help` prints the help and exits); throws on a bad value. */
export const parseOptions = (argv: ReadonlyArray<string>): GamedayOptions => {
  const given = flags(
    { hosts: 1000, tunnels: 2, rate: 500, rounds: defaultRounds.join(","), duration: 30, gate: 30, workers: 2, out: path.join(repoRoot, "bench-results") },
    [...argv],
    help
  )
  const rounds = given.rounds.split(",").map((r) => r.trim()).filter((r) => r !== "")
  for (const r of rounds) {
    if (!(r in roundKinds)) throw new Error(`unknown round "${r}"; known: ${Object.keys(roundKinds).join(", ")}`)
  }
  if (!Number.isInteger(given.hosts) || given.hosts < 1) throw new Error("--hosts must be a positive integer")
  if (!Number.isInteger(given.tunnels) || given.tunnels < 1) throw new Error("--tunnels must be a positive integer")
  if (!(given.gate >= 0)) throw new Error("--gate must be >= 0")
  if (!(given.rate > 0)) throw new Error("--rate must be > 0")
  if (!(given.duration > 0)) throw new Error("--duration must be > 0")
  if (!Number.isInteger(given.workers) || given.workers < 1) throw new Error("--workers must be a positive integer")

  const org = "gameday"
  const spacingMs = (given.hosts / given.rate) * 1000
  return {
    ...given,
    rounds: rounds as Array<RoundName>,
    org,
    tunnelsFor: (kind: RoundKind) => kind.tunnels ?? given.tunnels,
    hostIds: Array.from({ length: given.hosts }, (_, i) => `${org}:h${i}`),
    spacingMs,
    warmupMs: Math.max(2_000, 2 * spacingMs + 1_000),
    leadMs: Math.min(3_000, (given.duration * 1000) / 4),
    settleMs: Math.max(1_000, 2 * spacingMs + 500),
    recoveryTimeoutMs: 90_000,
    requestTimeoutMs: 10_000
  }
}
