/**
 * bench:http-stack's idle WebSocket clients, in a process of their own: opens `count`
 * connections to `url` (at most 64 handshakes in flight), prints `{"open":N,"failed":M}` once
 * every attempt is settled, then holds them, sending nothing, until it is killed.
 * argv: url count
 */
import WebSocket from "ws"

const url = process.argv[2] ?? ""
const count = Number(process.argv[3] ?? "0")
const inFlight = 64
const held: Array<WebSocket> = []
let open = 0
let failed = 0
let next = 0

const dial = (): Promise<void> =>
  new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    ws.once("open", () => {
      open++
      held.push(ws)
      resolve()
    })
    ws.once("error", () => {
      failed++
      resolve()
    })
  })

const worker = async () => {
  while (next < count) {
    next++
    await dial()
  }
}

await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker))
console.log(JSON.stringify({ open, failed }))
setInterval(() => {}, 60_000)
