import { describe, expect, it } from "@effect/vitest"
import { parseHolds } from "../../../scripts/gameday/relay-metrics.js"
import { backToAllTunnels, longestWithoutTunnel } from "../../../scripts/gameday/stats.js"

/** The game day's arithmetic for two tunnels per host, on made-up gaps (times in ms). */
describe("gameday stats", () => {
  it("longestWithoutTunnel: per host, the longest gap clipped to the round, hosts without a gap count 0", () => {
    const gaps = [
      { hostId: "h1", downAt: 100, upAt: 400 },
      { hostId: "h1", downAt: 500, upAt: 550 },
      // Began before the round (from 1,000): only its part inside counts.
      { hostId: "h2", downAt: 900, upAt: 1_200 },
      // Still open at the end (to 2,000).
      { hostId: "h3", downAt: 1_500, upAt: undefined }
    ]
    expect([...longestWithoutTunnel(gaps, 5, 0, 2_000)].sort((a, b) => a - b)).toEqual([0, 0, 300, 300, 500])
    expect([...longestWithoutTunnel(gaps, 4, 1_000, 2_000)].sort((a, b) => a - b)).toEqual([0, 0, 200, 500])
  })

  it("backToAllTunnels: per signal, until every host short of a tunnel then or after has all again; undefined if one never did", () => {
    const belowAll = [
      { hostId: "h1", downAt: 1_010, upAt: 1_800 },
      { hostId: "h2", downAt: 1_020, upAt: 2_500 },
      { hostId: "h1", downAt: 5_010, upAt: 5_300 },
      { hostId: "h2", downAt: 9_100, upAt: undefined }
    ]
    expect(backToAllTunnels(belowAll, [1_000, 5_000], 8_000)).toEqual([1_500, 300])
    expect(backToAllTunnels(belowAll, [1_000, 5_000, 9_000], 10_000)).toEqual([1_500, 300, undefined])
    // No host lost a tunnel after the signal.
    expect(backToAllTunnels([], [1_000], 2_000)).toEqual([0])
    // The second signal came before every host was back from the first (no wait between them):
    // h2, still short of a tunnel at 2,000, counts for both.
    expect(backToAllTunnels(belowAll.slice(0, 2), [1_000, 2_000], 4_000)).toEqual([1_500, 500])
  })

  it("parseHolds: relay_holds_total by outcome from a Prometheus page, other lines ignored", () => {
    const page = [
      "# HELP relay_holds_total Requests held for a host",
      "# TYPE relay_holds_total counter",
      "relay_holds_total{outcome=\"released_by_event\"} 12",
      "relay_holds_total{outcome=\"timed_out\",otel_scope_name=\"x\"} 3",
      "relay_holds_total{outcome=\"refused\"} 0",
      "relay_holds_total{outcome=\"drained\"} 2",
      "relay_held_requests 7"
    ].join("\n")
    expect(parseHolds(page)).toEqual({ releasedByEvent: 12, timedOut: 3, refused: 0, drained: 2 })
    expect(parseHolds("")).toEqual({ releasedByEvent: 0, timedOut: 0, refused: 0, drained: 0 })
  })
})
