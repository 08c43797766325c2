import { HttpResponse, PrometheusText } from "@effect-relay/protocol"
import { fakeHost, openSocket, token, parsePrometheus, type PrometheusFamily } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Metric, MetricBoundaries, Scope } from "effect"
import { RelayLiveMemory } from "../src/Relay.js"
import { RelayServer } from "../src/http/RelayServer.js"
import { TunnelRegistry } from "../src/tunnel/TunnelRegistry.js"
import { eventually, get, testConfig } from "./support.js"

/** One sample's value (a counter or gauge), 0 when the series does not exist yet. */
const valueOf = (families: ReadonlyArray<PrometheusFamily>, name: string, labels: Record<string, string> = {}): number => {
  const family = families.find((f) => f.name === name)
  const sample = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
  return Number(sample?.value ?? sample?.count ?? 0)
}

describe("/metrics", () => {
  it.scopedLive("Prometheus text that moves with a registration, a refusal, a request, a close and a drain", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(RelayLiveMemory.pipe(Layer.provide(testConfig({ drainFlushMs: 100 }))), scope)
      const { port } = Context.get(context, RelayServer)
      const registry = Context.get(context, TunnelRegistry)
      const base = `http://127.0.0.1:${port}`
      const scrape = Effect.gen(function*() {
        const res = yield* get(`${base}/metrics`)
        expect(res.status).toBe(200)
        expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4")
        return parsePrometheus(yield* Effect.promise(() => res.text()))
      })

      const before = yield* scrape
      const t = yield* token({ org: "acme" })
      yield* fakeHost(`ws://127.0.0.1:${port}`, "acme:a", t, (req) => HttpResponse.make({ id: req.id, status: 200, headers: {}, body: "ok" }))
      const b = yield* fakeHost(`ws://127.0.0.1:${port}`, "acme:b", t)
      yield* eventually(Effect.filterOrFail(Effect.sync(() => registry.size()), (n) => n === 2))
      // Refused: a token for another org.
      const other = yield* token({ org: "evil" })
      const refused = yield* Effect.flip(openSocket(`ws://127.0.0.1:${port}/tunnel?hostId=acme:c`, { authorization: `Bearer ${other}` }))
      expect(refused).toEqual({ status: 403 })
      const answer = yield* get(`${base}/hosts/acme:a/x`, t)
      expect(answer.status).toBe(200)
      yield* Effect.promise(() => answer.text())
      b.ws.close(1000, "bye")
      yield* eventually(Effect.filterOrFail(Effect.sync(() => registry.size()), (n) => n === 1))

      const after = yield* scrape
      const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels)
      expect(delta("relay_tunnel_registrations_total", { result: "accepted" })).toBe(2)
      expect(delta("relay_tunnel_registrations_total", { result: "refused_forbidden" })).toBe(1)
      expect(delta("relay_requests_total", { status: "200" })).toBe(1)
      expect(delta("relay_routed_total", { mode: "local" })).toBe(1)
      expect(delta("relay_tunnel_closes_total", { code: "1000" })).toBe(1)
      expect(valueOf(after, "relay_tunnels_open")).toBe(1)
      expect(valueOf(after, "relay_pending_requests")).toBe(0)
      const histogram = after.find((f) => f.name === "relay_request_duration_seconds")
      expect(histogram?.type).toBe("HISTOGRAM")
      expect(Number(histogram?.metrics[0]?.count) - Number(before.find((f) => f.name === "relay_request_duration_seconds")?.metrics[0]?.count ?? 0)).toBe(1)
      for (const name of ["relay_tunnels_open", "relay_pending_requests"]) expect(after.find((f) => f.name === name)?.type).toBe("GAUGE")
      for (const name of ["relay_requests_total", "relay_tunnel_registrations_total", "relay_tunnel_closes_total", "relay_routed_total"]) {
        expect(after.find((f) => f.name === name)?.type, name).toBe("COUNTER")
      }

      // The drain closes the server, so its figures are read from the same registry in process.
      yield* Scope.close(scope, Exit.void)
      const drained = parsePrometheus(yield* PrometheusText.render(["relay_"]))
      expect(valueOf(drained, "relay_drains_total") - valueOf(after, "relay_drains_total")).toBe(1)
      // The 4001 close is counted when its handshake completes, just after the drain.
      yield* eventually(Effect.filterOrFail(
        Effect.map(PrometheusText.render(["relay_"]), (text) => valueOf(parsePrometheus(text), "relay_tunnel_closes_total", { code: "4001" }) - valueOf(after, "relay_tunnel_closes_total", { code: "4001" })),
        (n) => n === 1
      ))
      const drainDuration = drained.find((f) => f.name === "relay_drain_duration_seconds")
      expect(Number(drainDuration?.metrics[0]?.count)).toBeGreaterThanOrEqual(1)
    }))

  it.effect("label values with quotes, backslashes and newlines are escaped; histograms end with +Inf", () =>
    Effect.gen(function*() {
      const odd = 'say "hi"\\ and\nbye'
      yield* Metric.increment(Metric.tagged(Metric.counter("relaytest_odd_total", { incremental: true }), "label", odd))
      yield* Metric.update(Metric.histogram("relaytest_seconds", MetricBoundaries.fromIterable([0.1, 1])), 0.5)
      const text = yield* PrometheusText.render(["relaytest_"])
      expect(text).toContain('relaytest_odd_total{label="say \\"hi\\"\\\\ and\\nbye"} 1')
      const families = parsePrometheus(text)
      expect(families.find((f) => f.name === "relaytest_odd_total")?.metrics[0]?.labels?.label).toBe(odd)
      const histogram = families.find((f) => f.name === "relaytest_seconds")
      expect(histogram?.metrics[0]?.buckets).toEqual({ "0.1": "0", "1": "1", "+Inf": "1" })
      expect(histogram?.metrics[0]?.count).toBe("1")
      expect(histogram?.metrics[0]?.sum).toBe("0.5")
    }))
})
