// A host that floods its tunnel with frames as fast as its socket takes them, for a while: the
// relay must not let it slow anyone else. Plain JavaScript, run with node as its own process, so
// the flood does not share an event loop with the test that measures the others.
// Usage: node flood-host.mjs <relayWs> <hostId> <token> <seconds> <kinds: pong,unknown,garbage>
import WebSocket from "ws"

const [relayWs, hostId, token, seconds, kinds] = process.argv.slice(2)
const frames = {
  pong: JSON.stringify({ type: "pong", ts: 1 }),
  unknown: JSON.stringify({ type: "no-such-type", data: "x".repeat(64) }),
  garbage: "}{ not json at all " + "y".repeat(32)
}
const mix = kinds.split(",").map((k) => frames[k])
const ws = new WebSocket(`${relayWs}/tunnel?hostId=${encodeURIComponent(hostId)}`, {
  headers: { authorization: `Bearer ${token}` },
  perMessageDeflate: false
})
let sent = 0
let closed
ws.on("error", () => {})
ws.on("close", (code) => (closed = code))
ws.on("open", () => {
  process.stdout.write(JSON.stringify({ event: "open" }) + "\n")
  const until = Date.now() + Number(seconds) * 1000
  const burst = () => {
    if (Date.now() >= until || ws.readyState !== WebSocket.OPEN) return finish()
    // Keep the socket's queue short: frames go out as fast as the relay reads them, no faster.
    while (ws.bufferedAmount < 256 * 1024 && Date.now() < until) {
      for (let i = 0; i < 256; i++) ws.send(mix[sent++ % mix.length])
    }
    setTimeout(burst, 1)
  }
  burst()
})
const finish = () => {
  const report = () => {
    process.stdout.write(JSON.stringify({ event: "done", sent, closed: closed ?? null }) + "\n")
    ws.terminate()
    process.exit(0)
  }
  // Closed by the relay: report its close code once the handshake is over.
  if (ws.readyState === WebSocket.CLOSING) {
    ws.once("close", report)
    setTimeout(report, 10_000)
  } else report()
}
