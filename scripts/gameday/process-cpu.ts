/**
 * CPU use of named processes over a window, sampled from /proc (Linux): the
 * total in core-seconds and the busiest one-second sample in percent of one
 * core. A name may change PID during the window (a relay restarted in place);
 * each PID's time is added to its name.
 */
import * as fs from "node:fs"

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const ticksPerSecond = 100

/** utime + stime of a process, in ticks; undefined once it is gone. */
const cpuTicks = (pid: number): number | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name (field 2) may contain spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return undefined
  }
}

export interface CpuUse {
  /** Core-seconds used during the window. */
  readonly cpuSeconds: number
  /** The busiest sample, in percent of one core. */
  readonly peakPercent: number
}

export interface CpuSampler {
  /** Stops sampling and returns each name's use since `start`. */
  readonly stop: () => Record<string, CpuUse>
}

/** Samples every `intervalMs` the processes `current()` names (name -> PID). */
export const sampleCpu = (current: () => Record<string, number | undefined>, intervalMs = 1000): CpuSampler => {
  const last = new Map<number, { ticks: number; at: number }>()
  const totals = new Map<string, { ticks: number; peak: number }>()
  const tick = () => {
    const now = Date.now()
    for (const [name, pid] of Object.entries(current())) {
      if (pid === undefined) continue
      const ticks = cpuTicks(pid)
      if (ticks === undefined) continue
      const previous = last.get(pid)
      last.set(pid, { ticks, at: now })
      const total = totals.get(name) ?? { ticks: 0, peak: 0 }
      if (previous !== undefined && now > previous.at) {
        const used = ticks - previous.ticks
        total.ticks += used
        total.peak = Math.max(total.peak, (100 * used) / ticksPerSecond / ((now - previous.at) / 1000))
      }
      totals.set(name, total)
    }
  }
  tick()
  const timer = setInterval(tick, intervalMs)
  return {
    stop: () => {
      clearInterval(timer)
      tick()
      return Object.fromEntries(
        [...totals].map(([name, t]) => [name, { cpuSeconds: +(t.ticks / ticksPerSecond).toFixed(1), peakPercent: Math.round(t.peak) }])
      )
    }
  }
}
