/**
 * What a fuzz run checks after each batch: the relay still runs, answers the known-good request
 * through `fuzz:good` with the right body in time, stays under its RSS bound, and logged no error
 * and nothing that is not a log line (a crash's stack, a Node warning).
 */
import { parsePrometheus } from "../Prometheus.js"
import { type LogLine, messageOf, type RelayProcess } from "../RelayProcess.js"
import { relayGone, request, type RunState } from "./FuzzBatch.js"
import { rssMB } from "./FuzzRelay.js"

export const errorLevels = new Set(["ERROR", "FATAL"])

/** Events that are a bug of the relay's whatever their level (a frame handler's defect is logged as a warning, rate-limited). */
export const defectEvents = new Set(["tunnel.frame_defect"])

/** Whether a log line is one the run fails on: an error, or a defect. */
export const isFailureLine = (line: LogLine) => errorLevels.has(String(line.logLevel).toUpperCase()) || defectEvents.has(messageOf(line))

export const checkRelay = async (
  state: RunState,
  options: { readonly batch: number; readonly goodTimeoutMs: number; readonly boundMB: number; readonly logsSeen: number; readonly otherSeen: number }
) => {
  const { relay, failures } = state
  if (relayGone(relay)) {
    failures.push(`batch ${options.batch}: the relay exited (code ${relay.child.exitCode}, signal ${relay.child.signalCode}); its last output:\n${outputTail(relay)}`)
    return { status: 0, ms: 0, ok: false, rss: NaN, fatal: true }
  }
  const path = `/good/${options.batch}/${Date.now()}`
  const started = Date.now()
  const good = await request(`${relay.http}/hosts/fuzz:good${path}`, { token: state.tokens.valid, timeoutMs: options.goodTimeoutMs })
  const ms = Date.now() - started
  const ok = !("error" in good) && good.status === 200 && good.body === goodBody(path)
  if (!ok) {
    failures.push(`batch ${options.batch}: the known-good request got ${"error" in good ? good.error : `${good.status} ${good.body.slice(0, 200)}`}`)
  }
  const rss = rssMB(relay.pid)
  if (rss > options.boundMB) failures.push(`batch ${options.batch}: relay RSS ${rss.toFixed(0)} MB over the bound of ${options.boundMB.toFixed(0)} MB`)
  for (const line of relay.logs.slice(options.logsSeen)) {
    if (isFailureLine(line)) failures.push(`batch ${options.batch}: relay logged ${line.logLevel} ${messageOf(line)}: ${JSON.stringify(line).slice(0, 600)}`)
  }
  for (const line of relay.other.slice(options.otherSeen)) failures.push(`batch ${options.batch}: relay wrote a line that is not a log line: ${line.slice(0, 600)}`)
  // Logged errors are failures, but the run goes on: only a relay that is gone, deaf or too big ends it.
  return { status: "error" in good ? 0 : good.status, ms, ok, rss, fatal: !ok || rss > options.boundMB }
}

export const goodBody = (path: string) => `good:${path}`

/** The end of what the relay wrote, for a failure that needs it (a crash's stack). */
export const outputTail = (relay: RelayProcess) => {
  const { stdout, stderr } = relay.output()
  return `${stderr.slice(-3000)}${stderr === "" ? "" : "\n"}${stdout.slice(-1000)}`.trim()
}

export const limitHits = async (relayHttp: string): Promise<Record<string, number>> => {
  try {
    const res = await fetch(`${relayHttp}/metrics`, { signal: AbortSignal.timeout(5000) })
    const family = parsePrometheus(await res.text()).find((f) => f.name === "relay_limit_hits_total")
    return Object.fromEntries((family?.metrics ?? []).map((m) => [m.labels?.limit ?? "", Number(m.value)]))
  } catch {
    // A relay that is gone has no metrics; the failures say why.
    return {}
  }
}
