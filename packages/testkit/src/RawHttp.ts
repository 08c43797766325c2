import { Effect } from "effect"
import * as net from "node:net"

/**
 * A raw HTTP request sent in two parts: `head` now, the rest when `finish` is
 * called. The connection is open (and busy) in between, so a test can start
 * something (a drain) while a request is on its way. `finish` resolves with the
 * bytes received once `complete` says so, or when the connection closes.
 */
export const partialRequest = (port: number, head: string) =>
  Effect.async<{ finish: (rest: string, complete?: (b: Buffer) => boolean) => Effect.Effect<Buffer> }>((resume) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(head)
      resume(Effect.succeed({
        finish: (rest, complete = (b) => b.indexOf("\r\n\r\n") !== -1) =>
          Effect.async<Buffer>((done) => {
            let received = Buffer.alloc(0)
            socket.on("data", (chunk) => {
              received = Buffer.concat([received, chunk])
              if (complete(received)) done(Effect.succeed(received))
            })
            socket.on("close", () => done(Effect.succeed(received)))
            socket.write(rest)
          })
      }))
    })
    socket.on("error", () => {})
  })
