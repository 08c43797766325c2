/**
 * How a client WebSocket the fuzz opened through the relay turned out, in a few words for the
 * trace: open, refused (with the status), closed at once, or no answer within 2 s.
 */
import type WebSocket from "ws"

export const channelOutcome = (ws: WebSocket): Promise<string> =>
  new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve("channel: no answer"), 2000)
    ws.once("open", () => (clearTimeout(timer), resolve("channel open")))
    ws.once("unexpected-response", (_req, res) => {
      res.resume()
      clearTimeout(timer)
      resolve(`channel refused ${res.statusCode}`)
    })
    ws.once("close", () => (clearTimeout(timer), resolve("channel closed")))
  })
