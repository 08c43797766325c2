/**
 * bench:forward's WebSocket echo round trips: one connection, a few hundred
 * untimed round trips, then `roundtrips` timed ones, one at a time.
 */
import { Effect } from "effect"
import WebSocket from "ws"
import { percentile } from "../bench.js"
import { fmt, type Row } from "./http-load.js"
import type { Reachable } from "./systems.js"
import { wsRoundTrip } from "../ws-round-trip.js"

/** Untimed WebSocket round trips before the timed ones. */
export const wsWarmupRoundTrips = 500


const wsRoundTrips = (s: Reachable & { readonly ws: string }, roundtrips: number) =>
  Effect.promise(async (): Promise<Row> => {
    const ws = new WebSocket(s.ws, { headers: s.headers, perMessageDeflate: false })
    try {
      await new Promise((resolve, reject) => {
        ws.once("open", resolve)
        ws.once("error", reject)
      })
      for (let i = 0; i < wsWarmupRoundTrips; i++) await wsRoundTrip(ws, `warm ${i}`)
      const times: Array<number> = []
      let errors = 0
      const start = performance.now()
      for (let i = 0; i < roundtrips; i++) {
        const t0 = performance.now()
        if (await wsRoundTrip(ws, `ping ${i}`)) times.push(performance.now() - t0)
        else errors++
      }
      const seconds = (performance.now() - start) / 1000
      return {
        system: s.system,
        scenario: "ws echo round trip",
        connections: 1,
        reqPerSec: Math.round(times.length / seconds),
        p50Ms: +percentile(times, 50).toFixed(3),
        p99Ms: +percentile(times, 99).toFixed(3),
        errors,
        tool: "ws"
      }
    } finally {
      ws.terminate()
    }
  })

/** Round trips through every system that carries WebSockets here (direct and effect-relay). */
export const measureWs = (systems: ReadonlyArray<Reachable>, roundtrips: number) =>
  Effect.gen(function*() {
    const rows: Array<Row> = []
    for (const s of systems) {
      if (s.ws === undefined) continue
      const row = yield* wsRoundTrips({ ...s, ws: s.ws }, roundtrips)
      console.log(`${row.system.padEnd(12)} ${row.scenario}: ${row.reqPerSec} round trips/s, p50 ${fmt(row.p50Ms, 3)} ms, p99 ${fmt(row.p99Ms, 3)} ms, errors ${row.errors}`)
      rows.push(row)
    }
    return rows
  })
