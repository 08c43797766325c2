import { Effect } from "effect"
import WebSocket from "ws"

/** A raw WebSocket client that records everything, for asserting frames and close codes exactly. */
export interface RecordingSocket {
  readonly ws: WebSocket
  readonly frames: Array<{ readonly data: string | Buffer; readonly binary: boolean }>
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ readonly code: number; readonly reason: string }>
  /** Waits until `n` frames have arrived. */
  readonly waitFrames: (n: number, timeoutMs?: number) => Promise<void>
}

/** Opens a WebSocket; fails with the HTTP status when the server refuses the upgrade. */
export const openSocket = (url: string, headers: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.async<RecordingSocket, { readonly status: number } | Error>((resume) => {
      const ws = new WebSocket(url, { headers })
      const frames: RecordingSocket["frames"] = []
      const waiters: Array<() => void> = []
      ws.on("message", (data, isBinary) => {
        frames.push({ data: isBinary ? Buffer.from(data as Buffer) : data.toString(), binary: isBinary })
        for (const w of waiters.splice(0)) w()
      })
      const closed = new Promise<{ code: number; reason: string }>((r) => ws.on("close", (code, reason) => r({ code, reason: reason.toString() })))
      const waitFrames = (n: number, timeoutMs = 5000) =>
        new Promise<void>((resolve, reject) => {
          const deadline = setTimeout(() => reject(new Error(`timed out waiting for ${n} frames (have ${frames.length})`)), timeoutMs)
          const check = () => {
            if (frames.length >= n) {
              clearTimeout(deadline)
              resolve()
            } else waiters.push(check)
          }
          check()
        })
      ws.once("open", () => resume(Effect.succeed({ ws, frames, closed, waitFrames })))
      ws.once("unexpected-response", (_req, res) => {
        res.resume()
        resume(Effect.fail({ status: res.statusCode ?? 0 }))
      })
      ws.once("error", (e) => resume(Effect.fail(e)))
    }),
    ({ ws }) => Effect.sync(() => ws.terminate())
  )
