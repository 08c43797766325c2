/**
 * Logs that the network cannot blow up. A value that comes from a peer goes into a log line cut
 * to a bounded length, with its full length noted; an event a peer can repeat at will is logged
 * a few times per interval, and the next line that gets through says how many were left out.
 */

/** Longest network-supplied text a log line carries. */
export const maxLoggedChars = 200

/** `value` as a log field: cut to `max` characters, with the full length noted when cut. */
export const clip = (value: unknown, max: number = maxLoggedChars): string => {
  const text = typeof value === "string" ? value : String(value)
  return text.length <= max ? text : `${text.slice(0, max)}... (${text.length} chars)`
}

/** Whether one more line of an event may be written now. */
export interface LogGate {
  /**
   * Undefined when this line is to be left out; else how many lines were left out since the last
   * one that got through (0 usually), for the line to say so.
   */
  readonly admit: () => number | undefined
}

/** At most `lines` lines every `intervalMs`. */
export const gate = (lines: number, intervalMs: number, now: () => number = Date.now): LogGate => {
  let windowStart = -Infinity
  let used = 0
  let suppressed = 0
  return {
    admit: () => {
      const t = now()
      if (t - windowStart >= intervalMs) {
        windowStart = t
        used = 0
      }
      if (used >= lines) {
        suppressed++
        return undefined
      }
      used++
      const left = suppressed
      suppressed = 0
      return left
    }
  }
}
