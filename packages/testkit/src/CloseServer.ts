/**
 * Ends a test server at once: its WebSocket clients terminated, its HTTP connections closed (idle
 * or not), and done when the listener is closed.
 */
import { Effect } from "effect"
import type * as http from "node:http"
import type { WebSocketServer } from "ws"

export const closeServer = (server: http.Server, wss?: WebSocketServer): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (wss !== undefined) {
      for (const client of wss.clients) client.terminate()
      wss.close()
    }
    server.closeAllConnections()
    server.close(() => resume(Effect.void))
  })
