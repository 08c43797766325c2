import { Effect, Metric, type MetricPair, MetricState, Option } from "effect"

/**
 * Effect's metrics in the Prometheus text exposition format (version 0.0.4),
 * for the relay's and the host agent's `/metrics`. Counters, gauges and
 * histograms are rendered; the other kinds (frequency, summary) are left out.
 * Only metrics whose name starts with one of `prefixes` are shown (Effect
 * keeps one registry per process, which an embedding program shares).
 */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

export const render = (prefixes: ReadonlyArray<string>): Effect.Effect<string> =>
  Effect.map(Metric.snapshot, (pairs) => renderPairs(pairs, prefixes))

interface Family {
  readonly name: string
  readonly help: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly lines: Array<string>
}

export const renderPairs = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>, prefixes: ReadonlyArray<string>): string => {
  const families = new Map<string, Family>()
  for (const { metricKey, metricState } of pairs) {
    const name = metricKey.name
    if (!prefixes.some((prefix) => name.startsWith(prefix))) continue
    const labels = metricKey.tags.map((tag) => [tag.key, tag.value] as const)
    const type = MetricState.isCounterState(metricState)
      ? "counter"
      : MetricState.isGaugeState(metricState)
      ? "gauge"
      : MetricState.isHistogramState(metricState)
      ? "histogram"
      : undefined
    if (type === undefined) continue
    let family = families.get(name)
    if (family === undefined) {
      family = { name, help: Option.getOrElse(metricKey.description, () => name), type, lines: [] }
      families.set(name, family)
    }
    if (MetricState.isCounterState(metricState)) {
      family.lines.push(sample(name, labels, Number(metricState.count)))
    } else if (MetricState.isGaugeState(metricState)) {
      family.lines.push(sample(name, labels, Number(metricState.value)))
    } else if (MetricState.isHistogramState(metricState)) {
      // Effect's buckets are already cumulative, ending with +Inf.
      let sawInf = false
      for (const [bound, count] of metricState.buckets) {
        if (!Number.isFinite(bound)) sawInf = true
        family.lines.push(sample(`${name}_bucket`, [...labels, ["le", formatNumber(bound)]], count))
      }
      if (!sawInf) family.lines.push(sample(`${name}_bucket`, [...labels, ["le", "+Inf"]], metricState.count))
      family.lines.push(sample(`${name}_sum`, labels, metricState.sum))
      family.lines.push(sample(`${name}_count`, labels, metricState.count))
    }
  }
  const out: Array<string> = []
  for (const family of [...families.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`)
    out.push(`# TYPE ${family.name} ${family.type}`)
    out.push(...family.lines.sort())
  }
  return out.length === 0 ? "" : out.join("\n") + "\n"
}

const sample = (name: string, labels: ReadonlyArray<readonly [string, string]>, value: number): string =>
  labels.length === 0
    ? `${name} ${formatNumber(value)}`
    : `${name}{${labels.map(([key, v]) => `${key}="${escapeLabel(v)}"`).join(",")}} ${formatNumber(value)}`

const formatNumber = (value: number): string =>
  Number.isNaN(value) ? "NaN" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value)

const escapeLabel = (value: string): string => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")

const escapeHelp = (value: string): string => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")
