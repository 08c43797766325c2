/**
 * The kernel's TCP counters that say a listener could not keep up (Linux
 * /proc/net/netstat, machine-wide): connections dropped because a listen
 * queue was full, and connections reset because data arrived for one the
 * server had dropped. A load balancer sees those as refused or reset
 * connections to a process that is running.
 */
import * as fs from "node:fs"

const wanted = ["ListenOverflows", "ListenDrops", "TCPAbortOnData", "SyncookiesSent"] as const
export type TcpCounters = Record<(typeof wanted)[number], number>

export const readTcpCounters = (): TcpCounters => {
  const out: Record<string, number> = Object.fromEntries(wanted.map((w) => [w, 0]))
  try {
    const lines = fs.readFileSync("/proc/net/netstat", "utf8").split("\n")
    // Pairs of lines: "TcpExt: Name1 Name2 ..." then "TcpExt: value1 value2 ...".
    for (let i = 0; i + 1 < lines.length; i += 2) {
      if (!lines[i]!.startsWith("TcpExt:")) continue
      const names = lines[i]!.split(" ").slice(1)
      const values = lines[i + 1]!.split(" ").slice(1).map(Number)
      names.forEach((name, j) => {
        if ((wanted as ReadonlyArray<string>).includes(name)) out[name] = values[j] ?? 0
      })
    }
  } catch {
    // not Linux: zeros
  }
  return out as TcpCounters
}

export const tcpCountersSince = (from: TcpCounters): TcpCounters => {
  const now = readTcpCounters()
  return Object.fromEntries(wanted.map((w) => [w, now[w] - from[w]])) as TcpCounters
}
