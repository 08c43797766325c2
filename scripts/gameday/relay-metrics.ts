/**
 * What the game day reads from the relays' `/metrics`: the holds counter
 * (`relay_holds_total{outcome}`), summed over the relays and over every run
 * of each relay process. A counter starts at 0 with each process, so each
 * relay is read when the round's measurement starts (the baseline), just
 * before each signal, and at the end. A drained process ends its last holds
 * after that read: those come from its `drain.holds_ended` log line.
 */
export interface Holds {
  readonly releasedByEvent: number
  readonly timedOut: number
  readonly refused: number
  /** Ended by the relay's drain before it closed its connections (answered 503). */
  readonly drained: number
}

export const noHolds: Holds = { releasedByEvent: 0, timedOut: 0, refused: 0, drained: 0 }

const outcomes: Record<string, keyof Holds> = {
  released_by_event: "releasedByEvent",
  timed_out: "timedOut",
  refused: "refused",
  drained: "drained"
}

/** The holds counters in a Prometheus text page. */
export const parseHolds = (text: string): Holds => {
  const holds: Record<keyof Holds, number> = { ...noHolds }
  for (const line of text.split("\n")) {
    if (!line.startsWith("relay_holds_total{")) continue
    const outcome = /outcome="([^"]+)"/.exec(line)?.[1]
    const key = outcome === undefined ? undefined : outcomes[outcome]
    const value = Number(line.slice(line.lastIndexOf(" ") + 1))
    if (key !== undefined && Number.isFinite(value)) holds[key] += value
  }
  return holds
}

/** The relay's holds counters now, or undefined when its /metrics did not answer within 2 s. */
export const scrapeHolds = async (httpUrl: string): Promise<Holds | undefined> => {
  try {
    const res = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(2_000) })
    if (!res.ok) return undefined
    return parseHolds(await res.text())
  } catch {
    return undefined
  }
}

const add = (a: Holds, b: Holds, sign = 1): Holds => ({
  releasedByEvent: a.releasedByEvent + sign * b.releasedByEvent,
  timedOut: a.timedOut + sign * b.timedOut,
  refused: a.refused + sign * b.refused,
  drained: a.drained + sign * b.drained
})

/**
 * The holds of one round: `begin` with every relay's counters, `beforeStop` just before a relay
 * is signalled (a SIGKILLed process takes the holds that end after this read with it),
 * `started` when its new process runs (counting from 0), `end` with the relays' last counters.
 * `failedReads` counts reads that did not answer (their holds are missing from the sum).
 */
export const holdTally = () => {
  const baseline = new Map<string, Holds>()
  let sum = noHolds
  let failedReads = 0
  const read = async (httpUrl: string) => {
    const now = await scrapeHolds(httpUrl)
    if (now === undefined) failedReads++
    return now
  }
  const close = async (name: string, httpUrl: string) => {
    const now = await read(httpUrl)
    if (now !== undefined) sum = add(sum, add(now, baseline.get(name) ?? noHolds, -1))
    baseline.delete(name)
  }
  return {
    begin: async (name: string, httpUrl: string) => {
      baseline.set(name, (await read(httpUrl)) ?? noHolds)
    },
    beforeStop: close,
    started: (name: string) => void baseline.set(name, noHolds),
    end: close,
    /** Holds ended by drains after their process's last read (from the relays' logs). */
    drainedFromLogs: (count: number) => void (sum = { ...sum, drained: sum.drained + count }),
    result: () => ({
      total: sum.releasedByEvent + sum.timedOut + sum.refused + sum.drained,
      ...sum,
      failedReads
    })
  }
}
