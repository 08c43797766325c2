/**
 * A counter's series per tag value, made once and kept: tagging a metric on every update costs
 * more than the update itself, and most updates happen on socket callbacks. The relay's and the
 * host agent's metrics use it.
 */
import { Metric } from "effect"

export const byTag = (metric: Metric.Metric.Counter<number>, key: string): (value: string) => Metric.Metric.Counter<number> => {
  const series = new Map<string, Metric.Metric.Counter<number>>()
  return (value) => {
    let tagged = series.get(value)
    if (tagged === undefined) series.set(value, tagged = Metric.tagged(metric, key, value))
    return tagged
  }
}

/** An incremental counter (exported as a Prometheus counter, not a gauge). */
export const counter = (name: string, description: string): Metric.Metric.Counter<number> =>
  Metric.counter(name, { description, incremental: true })
