import { Effect } from "effect"
import * as http from "node:http"
import * as net from "node:net"

/**
 * A load balancer in front of several relays, the way a platform's proxy is: one URL, each
 * request and WebSocket to a backend picked at random. With `honourFlyReplay`, an answer carrying
 * `fly-replay: elsewhere=true` is replayed to another backend (as Fly's proxy does).
 */
export interface Front {
  readonly port: number
  readonly url: string
  readonly ws: string
  /** Answers replayed elsewhere so far. */
  readonly replays: () => number
}

export const startFront = (backendPorts: ReadonlyArray<number>, options: { readonly honourFlyReplay: boolean }) =>
  Effect.acquireRelease(
    Effect.async<{ server: http.Server; front: Front }>((resume) => {
      let replays = 0
      const pick = (exclude: ReadonlyArray<number>) => {
        const choices = backendPorts.filter((p) => !exclude.includes(p))
        return choices[Math.floor(Math.random() * choices.length)]
      }
      const rawHead = (req: http.IncomingMessage) =>
        `${req.method} ${req.url} HTTP/1.1\r\n` +
        Object.entries(req.headers).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`).join("\r\n") + "\r\n\r\n"

      /** An upgrade to one backend; an answer that asks to be replayed elsewhere goes to another. */
      const upgrade = (req: http.IncomingMessage, client: net.Socket, head: Buffer, tried: ReadonlyArray<number>) => {
        const port = pick(tried)
        if (port === undefined) return void client.destroy()
        const upstream = net.connect(port, "127.0.0.1", () => upstream.write(Buffer.concat([Buffer.from(rawHead(req)), head])))
        upstream.on("error", () => client.destroy())
        client.on("error", () => upstream.destroy())
        let answer = Buffer.alloc(0)
        const onData = (chunk: Buffer) => {
          answer = Buffer.concat([answer, chunk])
          const end = answer.indexOf("\r\n\r\n")
          if (end === -1) return
          upstream.off("data", onData)
          const headText = answer.subarray(0, end).toString("latin1")
          if (options.honourFlyReplay && /^fly-replay:\s*elsewhere=true/im.test(headText)) {
            replays++
            upstream.destroy()
            return upgrade(req, client, head, [...tried, port])
          }
          client.write(answer)
          upstream.pipe(client)
          client.pipe(upstream)
        }
        upstream.on("data", onData)
        upstream.on("close", () => client.destroy())
        client.on("close", () => upstream.destroy())
      }

      const server = http.createServer((req, res) => {
        const port = pick([])!
        const upstream = http.request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers)
          answer.pipe(res)
        })
        upstream.on("error", () => res.destroy())
        req.pipe(upstream)
      })
      server.on("upgrade", (req, socket, head) => upgrade(req, socket as net.Socket, head, []))
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as net.AddressInfo).port
        resume(Effect.succeed({ server, front: { port, url: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}`, replays: () => replays } }))
      })
    }),
    ({ server }) => Effect.sync(() => {
      server.closeAllConnections()
      server.close()
    })
  ).pipe(Effect.map(({ front }) => front))
