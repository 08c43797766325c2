/**
 * The version 2 hosts a fuzz run keeps on the relay, each a WebSocket on `/tunnel` for org `fuzz`
 * that offers `effect-relay.2`:
 * - `fuzz:good2` behaves: it runs the protocol's own `StreamMux` (the agent's flow control), echoes
 *   a POST's body and answers a GET `/g/<nonce>/<size>` with `size` bytes of `bodyOf(nonce)`. Its
 *   clients must all get their whole answer, whatever the evil host does meanwhile.
 * - `fuzz:evil2` keeps its own books (`StreamBooks.ts`): it answers requests only when an input
 *   tells it to, and sends whatever generator 5 makes, every frame going through the books so that
 *   each stream's client can be held to what the host sent on it.
 * Neither reconnects: the relay must never close either tunnel (a closed one is a failure).
 */
import {
  Features,
  FeaturesHeader,
  HostToRelayV2Codec,
  type RelayToHostV2,
  RelayToHostV2Codec,
  parseWindows,
  StreamMux,
  Transport,
  TunnelProtocols,
  WindowHeader,
  type Windows,
  windowsHeader
} from "@effect-relay/protocol"
import { Effect, Either } from "effect"
import WebSocket from "ws"
import { bodyOf, type Books, makeBooks } from "./StreamBooks.js"

/** What the fuzz's version 2 hosts announce they take in: small, so that credit runs out often. */
export const hostWindows: Windows = { stream: 32 * 1024, tunnel: 128 * 1024 }

/**
 * A tunnel the relay agreed to speak version 2 on, with the relay's first frames still to come.
 * `windowHeader` is what the host announces of its windows (by default, `hostWindows`).
 */
const connectV2 = (
  relayWs: string,
  hostId: string,
  token: string,
  onOpen: (ws: WebSocket) => void,
  windowHeader: string | Array<string> = windowsHeader(hostWindows)
): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${relayWs}/tunnel?hostId=${encodeURIComponent(hostId)}`, [TunnelProtocols.v1, TunnelProtocols.v2], {
      headers: { authorization: `Bearer ${token}`, [FeaturesHeader]: Features.hello, [WindowHeader]: windowHeader },
      perMessageDeflate: false,
      maxPayload: 256 * 1024 * 1024
    })
    ws.on("error", () => {})
    ws.once("open", () => {
      if (ws.protocol !== TunnelProtocols.v2) {
        ws.terminate()
        return reject(new Error(`${hostId}: the relay answered ${JSON.stringify(ws.protocol)}, not ${TunnelProtocols.v2}`))
      }
      onOpen(ws)
      resolve(ws)
    })
    ws.once("unexpected-response", (_req, res) => {
      res.resume()
      reject(new Error(`${hostId}: tunnel refused with HTTP ${res.statusCode}`))
    })
    ws.once("error", reject)
  })

const decode = (data: WebSocket.RawData): RelayToHostV2 | undefined => {
  const decoded = RelayToHostV2Codec.decode(data.toString())
  return Either.isRight(decoded) ? decoded.right : undefined
}

/** Close codes of a host's tunnel, counted once the relay closed it. */
const closeCounter = (ws: WebSocket, closes: Map<string, number>, stopped: () => boolean) =>
  ws.on("close", (code) => {
    if (!stopped()) closes.set(String(code), (closes.get(String(code)) ?? 0) + 1)
  })

// --- fuzz:good2

export interface GoodV2Host {
  readonly counts: () => { readonly requests: number; readonly problems: number }
  readonly closes: ReadonlyMap<string, number>
  readonly stop: () => void
}

export const goodV2Host = (relayWs: string, hostId: string, token: string) =>
  Effect.acquireRelease(Effect.promise(() => startGoodV2Host(relayWs, hostId, token)), (host) => Effect.sync(host.stop))

/**
 * A well-behaved version 2 host that announces `windowHeader` (any text: it takes in what the
 * relay makes of it, by the same `parseWindows`).
 */
export const startGoodV2Host = async (relayWs: string, hostId: string, token: string, windowHeader?: string | Array<string>): Promise<GoodV2Host> => {
  const windows = windowHeader === undefined ? hostWindows : parseWindows(windowHeader)
  let requests = 0
  let problems = 0
  let stopped = false
  const closes = new Map<string, number>()
  let greeted: () => void = () => {}
  const hello = new Promise<void>((r) => (greeted = r))
  const ws = await connectV2(relayWs, hostId, token, (ws) => {
    const conn = Transport.unsafeFromWebSocket(ws)
    const mux = StreamMux.make({
      conn,
      windows,
      peerWindows: windows,
      sendBufferBytes: 1024 * 1024,
      encodeReset: (stream, reason) => HostToRelayV2Codec.encode({ _tag: "reset", stream, reason }),
      onProblem: () => void problems++
    })
    const onRequest = (head: Extract<RelayToHostV2, { readonly _tag: "http" }>) => {
      requests++
      const chunks: Array<Buffer> = []
      const answer = () => {
        const get = /^\/g\/([^/]+)\/(\d+)/.exec(head.path)
        const body = get ? bodyOf(get[1]!, Number(get[2])) : Buffer.concat(chunks)
        const declared = !head.path.includes("chunked")
        conn.unsafeSend(HostToRelayV2Codec.encode({
          _tag: "http:response",
          stream: head.stream,
          status: 200,
          headers: { "content-type": "application/octet-stream" },
          ...(declared ? { length: body.length } : {}),
          end: body.length === 0
        }))
        if (body.length === 0) return port.close()
        port.write(body)
        port.end()
        port.close()
      }
      const port = mux.open(head.stream, {
        onData: (chunk, done) => {
          chunks.push(Buffer.from(chunk))
          done()
        },
        onEnd: answer,
        onReset: () => {}
      })
      if (head.end) answer()
    }
    conn.onMessage((frame) => {
      if (typeof frame !== "string") return mux.onFrame(frame)
      const m = decode(Buffer.from(frame))
      switch (m?._tag) {
        case "ping":
          return void conn.unsafeSend(HostToRelayV2Codec.encode({ _tag: "pong", ts: m.ts }))
        case "hello":
          if (m.streamWindow !== undefined && m.tunnelWindow !== undefined) mux.setPeerWindows({ stream: m.streamWindow, tunnel: m.tunnelWindow })
          return greeted()
        case "http":
          return onRequest(m)
        case "reset":
          return mux.onReset(m.stream, m.reason)
      }
    })
  }, windowHeader)
  closeCounter(ws, closes, () => stopped)
  await hello
  return {
    counts: () => ({ requests, problems }),
    closes,
    stop: () => {
      stopped = true
      ws.terminate()
    }
  }
}

// --- fuzz:evil2

export interface EvilV2Host {
  readonly books: Books
  readonly closes: ReadonlyMap<string, number>
  /** Whether its tunnel is still open. */
  readonly open: () => boolean
}

export const evilV2Host = (relayWs: string, hostId: string, token: string) =>
  Effect.acquireRelease(
    Effect.promise(async (): Promise<EvilV2Host & { stop: () => void }> => {
      let stopped = false
      const closes = new Map<string, number>()
      let greeted: () => void = () => {}
      const hello = new Promise<void>((r) => (greeted = r))
      let books: Books | undefined
      const ws = await connectV2(relayWs, hostId, token, (ws) => {
        const made = makeBooks((data) => {
          if (ws.readyState === WebSocket.OPEN) ws.send(data, { binary: typeof data !== "string" })
        })
        books = made
        ws.on("message", (data, isBinary) => {
          if (isBinary) return made.fromRelay(Buffer.isBuffer(data) ? data : Buffer.concat(data as Array<Buffer>))
          const m = decode(data as Buffer)
          if (m === undefined) return
          if (m._tag === "ping") return ws.send(HostToRelayV2Codec.encode({ _tag: "pong", ts: m.ts }))
          if (m._tag === "hello") {
            made.greeted({ stream: m.streamWindow ?? 256 * 1024, tunnel: m.tunnelWindow ?? 4 * 1024 * 1024 })
            return greeted()
          }
          made.onMessage(m)
        })
      })
      closeCounter(ws, closes, () => stopped)
      await hello
      return {
        books: books!,
        closes,
        open: () => ws.readyState === WebSocket.OPEN,
        stop: () => {
          stopped = true
          ws.terminate()
        }
      }
    }),
    (host) => Effect.sync(host.stop)
  )
