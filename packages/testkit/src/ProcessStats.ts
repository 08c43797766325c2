import * as fs from "node:fs"

/** A process's resident set size in bytes, from /proc (Linux); undefined once it is gone. */
export const rssBytes = (pid: number): number | undefined => {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return match ? Number(match[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

/** Samples a process's RSS every `everyMs` until stopped; keeps the peak. */
export const sampleRss = (pid: number, everyMs = 50) => {
  let peak = rssBytes(pid) ?? 0
  const timer = setInterval(() => {
    const now = rssBytes(pid)
    if (now !== undefined && now > peak) peak = now
  }, everyMs)
  return {
    peak: () => peak,
    stop: () => clearInterval(timer)
  }
}

export const MiB = 1024 * 1024
