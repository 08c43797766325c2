/**
 * A worker that holds many idle tunnels to a relay with raw WebSockets (the
 * cheapest possible host, so the relay is what gets measured). It answers
 * pings, records when each drain frame and each close arrived, and prints one
 * JSON line when told to report (stdin "report") or when every tunnel closed.
 *
 * argv: relayWsUrl token org firstIndex count concurrency
 */
import WebSocket from "ws"

const [relay, token, org, firstArg, countArg, concurrencyArg] = process.argv.slice(2)
const first = Number(firstArg)
const count = Number(countArg)
const concurrency = Number(concurrencyArg ?? 200)

const drainAt: Array<number> = []
const closeAt: Array<number> = []
const codes: Record<string, number> = {}
let open = 0
let failed = 0

const openOne = (i: number) =>
  new Promise<void>((resolve) => {
    const ws = new WebSocket(`${relay}/tunnel?hostId=${org}:h${i}`, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false })
    let opened = false
    ws.on("open", () => {
      opened = true
      open++
      resolve()
    })
    ws.on("message", (data) => {
      const text = data.toString()
      if (text.includes('"type":"ping"')) {
        const ts = JSON.parse(text).ts
        ws.send(JSON.stringify({ type: "pong", ts }))
      } else if (text.includes('"type":"drain"')) drainAt.push(Date.now())
    })
    ws.on("error", () => {})
    ws.on("close", (code) => {
      closeAt.push(Date.now())
      codes[code] = (codes[code] ?? 0) + 1
      if (!opened) {
        failed++
        resolve()
      } else if (closeAt.length >= count) report()
    })
  })

let reported = false
const report = () => {
  if (reported) return
  reported = true
  process.stdout.write(JSON.stringify({
    type: "report",
    open,
    failed,
    drainFrames: drainAt.length,
    lastDrainAt: drainAt.length ? Math.max(...drainAt) : null,
    firstDrainAt: drainAt.length ? Math.min(...drainAt) : null,
    lastCloseAt: closeAt.length ? Math.max(...closeAt) : null,
    closes: closeAt.length,
    codes
  }) + "\n")
  setTimeout(() => process.exit(0), 50)
}

const main = async () => {
  let next = first
  const end = first + count
  const lanes = Array.from({ length: concurrency }, async () => {
    while (next < end) await openOne(next++)
  })
  await Promise.all(lanes)
  process.stdout.write(JSON.stringify({ type: "opened", open, failed }) + "\n")
}

process.stdin.on("data", (d) => {
  if (d.toString().includes("report")) report()
})
void main()
