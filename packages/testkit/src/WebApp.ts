import { Effect } from "effect"
import * as http from "node:http"
import { WebSocketServer } from "ws"
import { closeServer } from "./CloseServer.js"

/**
 * A web app the way dev servers and SPAs are written: absolute paths everywhere, and a cookie of
 * its own. Served behind a relay at `{name}--{org}.D`, it works only if every path reaches it.
 *
 * - `GET /` : a page that loads `/assets/app.js`, and sets the app's cookie `app-session=s3cret`.
 * - `GET /assets/app.js` : fetches `/api/data` (`#api` shows the `Cookie` the app received), then
 *   opens `ws://<location.host>/ws`, sends `ping` (`#ws` shows the answer: `pong` and the Cookie
 *   of the WebSocket's upgrade).
 * - `GET|POST /api/data` : JSON `{cookie, method}` of the request.
 * - `GET /attack?victim=<origin>` : a page of another tenant: a credentialed POST and GET to the
 *   victim's `/api/data?from=attack` and a WebSocket to its `/ws`; `#attack` tells when all three
 *   have ended, and how the WebSocket did (`ws:open` or `ws:refused`).
 * - WebSocket `/ws` : answers `pong <cookie>` to each frame.
 *
 * Every request and WebSocket upgrade it saw is in `seen`.
 */
export interface WebApp {
  readonly url: string
  readonly seen: Array<{ readonly method: string; readonly url: string; readonly headers: http.IncomingHttpHeaders; readonly websocket: boolean }>
}

export const appCookie = "app-session=s3cret"

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>app</title></head>
<body><h1>The app</h1><p id="api">api: waiting</p><p id="ws">ws: waiting</p>
<script src="/assets/app.js"></script></body></html>
`

const appJs = `(async () => {
  const show = (id, text) => { document.getElementById(id).textContent = text }
  try {
    const res = await fetch("/api/data")
    const data = await res.json()
    show("api", "api: " + res.status + " " + data.cookie)
  } catch (e) { show("api", "api: failed " + e) }
  const ws = new WebSocket("ws://" + location.host + "/ws")
  ws.onopen = () => ws.send("ping")
  ws.onmessage = (e) => { show("ws", "ws: " + e.data); ws.close() }
  ws.onerror = () => show("ws", "ws: failed")
})()
`

const attackPage = (victim: string) => `<!doctype html>
<html><head><meta charset="utf-8"><title>another tenant</title></head>
<body><p id="attack">attack: running</p>
<script>
(async () => {
  const victim = ${JSON.stringify(victim)}
  const outcomes = []
  const opts = { credentials: "include", mode: "no-cors" }
  await fetch(victim + "/api/data?from=attack-post", { ...opts, method: "POST", body: "x" }).catch(() => {})
  await fetch(victim + "/api/data?from=attack-get", opts).catch(() => {})
  const ws = await new Promise((resolve) => {
    const socket = new WebSocket(victim.replace(/^http/, "ws") + "/ws")
    socket.onopen = () => { socket.send("ping"); resolve("ws:open") }
    socket.onerror = () => resolve("ws:refused")
  })
  document.getElementById("attack").textContent = "attack: done " + ws
})()
</script></body></html>
`

export const startWebApp = Effect.acquireRelease(
  Effect.async<{ server: http.Server; wss: WebSocketServer; app: WebApp }>((resume) => {
    const seen: Array<WebApp["seen"][number]> = []
    const server = http.createServer((req, res) => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, websocket: false })
      req.resume()
      req.on("end", () => {
        const url = new URL(req.url ?? "/", "http://app")
        if (url.pathname === "/") {
          res.writeHead(200, { "content-type": "text/html; charset=utf-8", "set-cookie": `${appCookie}; Path=/; SameSite=Lax` })
          return res.end(page)
        }
        if (url.pathname === "/assets/app.js") {
          res.writeHead(200, { "content-type": "text/javascript" })
          return res.end(appJs)
        }
        if (url.pathname === "/api/data") {
          res.writeHead(200, { "content-type": "application/json" })
          return res.end(JSON.stringify({ cookie: req.headers.cookie ?? null, method: req.method }))
        }
        if (url.pathname === "/attack") {
          res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
          return res.end(attackPage(url.searchParams.get("victim") ?? ""))
        }
        res.writeHead(404, { "content-type": "text/plain" })
        res.end("not found")
      })
    })
    const wss = new WebSocketServer({ server })
    wss.on("connection", (ws, req) => {
      seen.push({ method: "GET", url: req.url ?? "", headers: req.headers, websocket: true })
      ws.on("error", () => {})
      ws.on("message", () => ws.send(`pong ${req.headers.cookie ?? "no cookie"}`))
    })
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port
      resume(Effect.succeed({ server, wss, app: { url: `http://127.0.0.1:${port}`, seen } }))
    })
  }),
  ({ server, wss }) => closeServer(server, wss)
).pipe(Effect.map(({ app }) => app))
