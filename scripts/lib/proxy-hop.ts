/**
 * One hop of bench:forward's "proxy-chain" baseline: a plain keep-alive
 * node:http reverse proxy. It forwards method, path, headers (less the
 * hop-by-hop ones) and the streamed body to the upstream over a keep-alive
 * Agent, and streams the response back. Two of them chained in front of the
 * target show what Node itself costs for two extra processes on the path, the
 * practical ceiling for a relay + host agent pair. No WebSockets.
 *
 * argv: upstreamUrl (http://host:port). Prints `{"port":N}` once it listens on 127.0.0.1.
 */
import * as http from "node:http"

const upstream = new URL(process.argv[2] ?? "")
if (upstream.protocol !== "http:") throw new Error(`usage: proxy-hop <http://upstream:port>, got ${process.argv[2]}`)

const agent = new http.Agent({ keepAlive: true, noDelay: true })

const hopByHop = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"])

const endToEnd = (headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders => {
  const out: http.OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !hopByHop.has(name)) out[name] = value
  }
  return out
}

const server = http.createServer((req, res) => {
  const forward = http.request(
    {
      agent,
      hostname: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: endToEnd(req.headers)
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers))
      answer.pipe(res)
    }
  )
  forward.on("error", () => {
    if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end("bad gateway")
    else res.destroy()
  })
  res.on("close", () => {
    if (!res.writableFinished) forward.destroy()
  })
  req.pipe(forward)
})
server.keepAliveTimeout = 60_000
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: (server.address() as { port: number }).port }))
})
