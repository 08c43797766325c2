/**
 * The messages `npm run gameday` exchanges with its worker processes over
 * Node's IPC channel: the host fleet workers (real host agents) and the load
 * generator. Plain JSON-serialisable data; times are `Date.now()` values (one
 * machine, one clock).
 */

/** Settings of the host agents one round runs with (the rest are the agent's defaults). */
export interface HostSettings {
  readonly resetOnDrain: boolean
  readonly backoffCapMs: number
}

export type FleetCommand =
  | {
    readonly type: "start"
    readonly hostIds: ReadonlyArray<string>
    readonly relayUrls: ReadonlyArray<string>
    readonly token: string
    readonly targetUrl: string
    readonly settings: HostSettings
    /** Tunnels each host agent holds (`--tunnels`): a host counts as back once it has this many. */
    readonly tunnels: number
    /** Host agents started at once while the fleet comes up. */
    readonly startConcurrency: number
  }
  /** The round is measured from now: restart the event-loop delay statistics. */
  | { readonly type: "measure" }
  | { readonly type: "report" }
  | { readonly type: "stop" }

/**
 * A time a host had fewer tunnels registered than wanted: `zero` gaps, with none at all (from
 * the end of its last tunnel to the registration of the next), and `belowAll` gaps, with fewer
 * than `tunnels` (from the first one ending to every one registered again).
 */
export interface TunnelGap {
  readonly hostId: string
  readonly downAt: number
  /** Undefined while the host is still reconnecting. */
  readonly upAt: number | undefined
}

export type FleetEvent =
  | {
    readonly type: "status"
    /** Hosts with at least one tunnel registered. */
    readonly connected: number
    /** Hosts with every one of their `tunnels` registered. */
    readonly full: number
    readonly total: number
  }
  | {
    readonly type: "report"
    /** Times a host had no tunnel at all. */
    readonly gaps: ReadonlyArray<TunnelGap>
    /** Times a host had fewer than `tunnels` (includes the times it had none). */
    readonly belowAll: ReadonlyArray<TunnelGap>
    /** How late the worker's event loop ran since "measure": a saturated worker reports late. */
    readonly eventLoopDelayMs: EventLoopDelay
  }
  | { readonly type: "stopped" }
  | { readonly type: "error"; readonly message: string }

export interface EventLoopDelay {
  readonly p99: number
  readonly max: number
}

export type LoadCommand =
  | {
    readonly type: "configure"
    /** The relays behind the load balancer (one or two), taken in turn. */
    readonly relayUrls: ReadonlyArray<string>
    readonly hostIds: ReadonlyArray<string>
    readonly token: string
    readonly rate: number
    readonly timeoutMs: number
  }
  /** Start sending at the configured rate (every host is requested in turn). */
  | { readonly type: "run" }
  /** From now on, count requests and outages for a report. */
  | { readonly type: "measure" }
  /**
   * Stop sending, wait for the requests in flight, and report what was measured; `signals` are
   * the times the relays (by index in `relayUrls`) were signalled, for `inFlightAtSignal`.
   */
  | { readonly type: "end"; readonly signals: ReadonlyArray<RelaySignal> }

/** A relay (index in `relayUrls`) signalled at `at` (Date.now() just before the signal was sent). */
export interface RelaySignal {
  readonly relay: number
  readonly at: number
}

/** One request that failed (after the load balancer's single retry, if any). */
export interface FailedRequest {
  readonly hostId: string
  /** Index of the relay whose answer (or error) ended the request: 0 or 1. */
  readonly relay: number
  /** `http 502 peer_unreachable`, `ECONNRESET`, `timeout`, `ECONNREFUSED`... */
  readonly kind: string
  readonly sentAt: number
  readonly doneAt: number
  /** The first relay refused or reset the connection before any response byte and this was the retry on the other one. */
  readonly retried: boolean
}

export interface LoadReport {
  readonly type: "report"
  readonly measuredFrom: number
  readonly measuredTo: number
  /** Requests sent while measuring (a retried one counts once). */
  readonly requests: number
  readonly succeeded: number
  readonly failedRequests: number
  /** Requests whose first relay refused the connection and that were sent again to the other one. */
  readonly refusedRetried: number
  /** Requests whose connection to the first relay was reset (or closed) before any response byte, sent again to the other one. */
  readonly resetRetried: number
  /**
   * Per signal (same order as `signals`): attempts (first tries and retries) the generator had
   * sent to that relay and not yet seen end (response complete, error or timeout) at that moment.
   */
  readonly inFlightAtSignal: ReadonlyArray<number>
  /** The failed requests, up to a bound (`failuresDropped` says how many were left out). */
  readonly failures: ReadonlyArray<FailedRequest>
  readonly failuresDropped: number
  /** Successful requests that took over 1 s (`kind` says how long: "1-2 s", "2-5 s", "over 5 s"), up to a bound. */
  readonly slow: ReadonlyArray<FailedRequest>
  readonly slowDropped: number
  /** Per host: the longest time without a successful response while measuring, in ms. */
  readonly longestGapMs: Record<string, number>
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number }
  /** How far behind its schedule the generator fell at worst (a busy generator shows here). */
  readonly maxLagMs: number
  readonly eventLoopDelayMs: EventLoopDelay
}

export type LoadEvent =
  | { readonly type: "configured" }
  | { readonly type: "running" }
  | { readonly type: "measuring"; readonly at: number }
  | LoadReport
  | { readonly type: "error"; readonly message: string }
