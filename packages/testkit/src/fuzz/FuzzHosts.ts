/**
 * The hosts a fuzz run keeps on the relay, each a raw WebSocket on `/tunnel` for org `fuzz`:
 * - `fuzz:h` answers every request (200, a body naming it) and echoes channel frames: the target
 *   of the raw HTTP requests and client WebSockets;
 * - `fuzz:evil` answers nothing by itself: it sends what generator 1 makes, and valid answers only
 *   when told, so bad frames meet requests in flight. It reconnects when the relay closes it.
 * (`fuzz:good`, the known-good host, is testkit's `fakeHost`.)
 */
import { Effect } from "effect"
import WebSocket from "ws"
import type { BuiltFrame, IdSource } from "./TunnelFrames.js"

interface HostSocket {
  readonly ws: WebSocket
  readonly closed: Promise<{ readonly code: number; readonly reason: string }>
}

const connectHost = (relayWs: string, hostId: string, token: string): Promise<HostSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${relayWs}/tunnel?hostId=${encodeURIComponent(hostId)}`, {
      headers: { authorization: `Bearer ${token}` },
      perMessageDeflate: false,
      maxPayload: 256 * 1024 * 1024
    })
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on("close", (code, reason) => r({ code, reason: reason.toString() })))
    ws.on("error", () => {})
    ws.once("open", () => resolve({ ws, closed }))
    ws.once("unexpected-response", (_req, res) => {
      res.resume()
      reject(new Error(`${hostId}: tunnel refused with HTTP ${res.statusCode}`))
    })
    ws.once("error", reject)
  })

type Json = Record<string, unknown>

const parse = (data: WebSocket.RawData, isBinary: boolean): Json | undefined => {
  if (isBinary) return undefined
  try {
    const value: unknown = JSON.parse(data.toString())
    return value !== null && typeof value === "object" ? (value as Json) : undefined
  } catch {
    return undefined
  }
}

const send = (ws: WebSocket, message: Json) => {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message))
}

/** A host that keeps its tunnel: reconnects (after `delayMs`) whenever the relay closes it, counting why. */
const keptHost = (relayWs: string, hostId: string, token: string, onSocket: (ws: WebSocket) => void) => {
  let current: HostSocket | undefined
  let connecting: Promise<HostSocket> | undefined
  let stopped = false
  const closes = new Map<string, number>()
  let connects = 0
  const connect = (): Promise<HostSocket> =>
    (connecting ??= connectHost(relayWs, hostId, token).then((socket) => {
      connects++
      current = socket
      connecting = undefined
      onSocket(socket.ws)
      void socket.closed.then(({ code }) => {
        if (stopped) return
        closes.set(String(code), (closes.get(String(code)) ?? 0) + 1)
      })
      return socket
    }, (e) => {
      connecting = undefined
      throw e
    }))
  /** The open socket, reconnecting first if the relay closed the last one. */
  const ready = async (): Promise<WebSocket> => {
    for (let attempt = 0; ; attempt++) {
      if (current !== undefined && current.ws.readyState === WebSocket.OPEN) return current.ws
      try {
        return (await connect()).ws
      } catch (e) {
        if (attempt >= 20) throw e
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  }
  const stop = () => {
    stopped = true
    current?.ws.terminate()
  }
  return { ready, stop, closes, connects: () => connects, current: () => current?.ws }
}

// --- fuzz:h

export interface EchoHost {
  /** Requests answered and channel frames echoed. */
  readonly counts: () => { readonly requests: number; readonly frames: number; readonly channels: number }
  /** Close codes of tunnels the relay closed (the fuzz's clients must not be able to). */
  readonly closes: ReadonlyMap<string, number>
  readonly ready: () => Promise<WebSocket>
}

export const echoHost = (relayWs: string, hostId: string, token: string) =>
  Effect.acquireRelease(
    Effect.promise(async (): Promise<EchoHost & { stop: () => void }> => {
      let requests = 0
      let frames = 0
      let channels = 0
      const host = keptHost(relayWs, hostId, token, (ws) =>
        ws.on("message", (data, isBinary) => {
          const m = parse(data, isBinary)
          if (m === undefined) return
          switch (m.type) {
            case "ping":
              return send(ws, { type: "pong", ts: m.ts })
            case "http": {
              requests++
              const body = typeof m.body === "string" ? (m.bodyEncoding === "base64" ? Buffer.from(m.body, "base64").length : Buffer.byteLength(m.body)) : 0
              return send(ws, {
                type: "http:response",
                id: m.id,
                status: 200,
                headers: { "content-type": "text/plain" },
                body: `h ${String(m.method).slice(0, 20)} ${String(m.path).slice(0, 200)} ${body}`
              })
            }
            case "ws:open":
              channels++
              return
            case "ws:frame":
              frames++
              return send(ws, { type: "ws:frame", id: m.id, data: m.data, ...(m.encoding === undefined ? {} : { encoding: m.encoding }) })
          }
        }))
      await host.ready()
      return { counts: () => ({ requests, frames, channels }), closes: host.closes, ready: host.ready, stop: host.stop }
    }),
    (host) => Effect.sync(host.stop)
  )

// --- fuzz:evil

/** What the evil host sent and saw, over every connection it made. */
export interface EvilHost {
  readonly ids: IdSource
  readonly ready: () => Promise<WebSocket>
  readonly send: (frame: BuiltFrame) => Promise<void>
  /** A valid answer to a request in flight (`u` picks which); the id, or undefined when none is in flight. */
  readonly respond: (u: number, status: number, headers: Record<string, string | Array<string>>, base64: boolean, twice: boolean) => Promise<string | undefined>
  /** Answers every request still in flight (200); how many. */
  readonly answerAll: () => number
  readonly closes: ReadonlyMap<string, number>
  readonly connects: () => number
}

/** The answer body the evil host sends for the request with `nonce`: a client checks it gets its own. */
export const evilBody = (nonce: string) => `resp:${nonce}`

const nonceOf = (path: unknown) => (typeof path === "string" ? /\/r\/([^/?]+)/.exec(path)?.[1] ?? "" : "")

const keepLast = (items: Array<string>, item: string, max: number) => {
  items.push(item)
  if (items.length > max) items.splice(0, items.length - max)
}

export const evilHost = (relayWs: string, hostId: string, token: string) =>
  Effect.acquireRelease(
    Effect.promise(async (): Promise<EvilHost & { stop: () => void }> => {
      // Per connection: a new tunnel numbers its requests from 1 again.
      let inflight = new Map<string, string>()
      let answered: Array<string> = []
      let channels: Array<string> = []
      const host = keptHost(relayWs, hostId, token, (ws) => {
        inflight = new Map()
        answered = []
        channels = []
        const mine = { inflight, answered, channels }
        ws.on("message", (data, isBinary) => {
          const m = parse(data, isBinary)
          if (m === undefined || (typeof m.id !== "string" && m.type !== "ping")) return
          switch (m.type) {
            case "ping":
              return send(ws, { type: "pong", ts: m.ts })
            case "http":
              return void mine.inflight.set(m.id as string, nonceOf(m.path))
            case "ws:open":
              return keepLast(mine.channels, m.id as string, 100)
          }
        })
      })
      const at = <T>(items: ReadonlyArray<T>, u: number): T | undefined => (items.length === 0 ? undefined : items[Math.floor(u * items.length)])
      const answer = (ws: WebSocket, id: string, nonce: string, status: number, headers: Record<string, string | Array<string>>, base64: boolean) => {
        const body = evilBody(nonce)
        send(ws, { type: "http:response", id, status, headers, ...(base64 ? { body: Buffer.from(body).toString("base64"), bodyEncoding: "base64" } : { body }) })
        inflight.delete(id)
        keepLast(answered, id, 200)
      }
      await host.ready()
      return {
        ids: {
          inflight: (u) => at([...inflight.keys()], u),
          answered: (u) => at(answered, u),
          channel: (u) => at(channels, u)
        },
        ready: host.ready,
        send: async (frame) => {
          const ws = await host.ready()
          ws.send(frame.data, { binary: frame.binary })
        },
        respond: async (u, status, headers, base64, twice) => {
          const ws = await host.ready()
          const id = at([...inflight.keys()], u)
          if (id === undefined) return undefined
          const nonce = inflight.get(id)!
          answer(ws, id, nonce, status, headers, base64)
          if (twice) answer(ws, id, nonce, status, headers, base64)
          return id
        },
        answerAll: () => {
          const ws = host.current()
          if (ws === undefined || ws.readyState !== WebSocket.OPEN) return 0
          const ids = [...inflight.entries()]
          for (const [id, nonce] of ids) answer(ws, id, nonce, 200, { "content-type": "text/plain" }, false)
          return ids.length
        },
        closes: host.closes,
        connects: host.connects,
        stop: host.stop
      }
    }),
    (host) => Effect.sync(host.stop)
  )
