/** bench:http-stack, stack "node": plain node:http, the handler called straight from the request event. */
import * as http from "node:http"
import { answerMemory, ready, small } from "./common.js"

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/small") {
    const text = JSON.stringify(small)
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
    res.end(text)
    return
  }
  if (req.method === "POST" && req.url === "/body") {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const text = JSON.stringify({ length: Buffer.concat(chunks).length })
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
      res.end(text)
    })
    return
  }
  req.resume()
  res.writeHead(404).end()
})
server.keepAliveTimeout = 75_000
answerMemory()
server.listen(0, "127.0.0.1", () => ready((server.address() as { port: number }).port, "node"))
