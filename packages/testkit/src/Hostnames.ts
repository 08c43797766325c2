import { Effect } from "effect"
import * as http from "node:http"

/**
 * The public domain the tests give relays: `{name}--{org}.relay.test`. Nothing resolves it; tests
 * send requests to 127.0.0.1 with the `Host` a browser would send (`requestWithHost`), and the
 * browser test maps `*.relay.test` to 127.0.0.1 with Chromium's host-resolver rules.
 */
export const testDomain = "relay.test"

export interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/**
 * An HTTP request to the relay listening on 127.0.0.1:`port`, sent with `Host: host` (say
 * `web--acme.relay.test:PORT`), as a client that resolved that name to the relay would send it.
 * Redirects are not followed.
 */
export const requestWithHost = (
  port: number,
  host: string,
  path: string,
  init: { readonly method?: string; readonly headers?: Record<string, string>; readonly body?: string } = {}
): Effect.Effect<Answer> =>
  Effect.async<Answer>((resume) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: init.method ?? "GET", headers: { ...init.headers, host } }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") })))
    })
    req.on("error", (e) => resume(Effect.die(e)))
    req.end(init.body)
    return Effect.sync(() => req.destroy())
  })
