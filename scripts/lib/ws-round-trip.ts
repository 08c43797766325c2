/**
 * One WebSocket round trip to an echo server: sends `message` and waits for the next message,
 * true when it is the same text back, false when it differs or none comes within 5 s.
 */
import type WebSocket from "ws"

export const wsRoundTrip = (ws: WebSocket, message: string) =>
  new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      ws.off("message", onMessage)
      resolve(false)
    }, 5000)
    const onMessage = (data: WebSocket.RawData) => {
      clearTimeout(timer)
      resolve(data.toString() === message)
    }
    ws.once("message", onMessage)
    ws.send(message)
  })
