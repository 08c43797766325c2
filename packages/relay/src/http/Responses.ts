/**
 * Writing the relay's own answers: JSON bodies on a `ServerResponse`, and raw HTTP/1.1 answers
 * on a socket whose upgrade is refused (no `ServerResponse` exists for those).
 */
import { Effect } from "effect"
import * as http from "node:http"
import type { Duplex } from "node:stream"
import { type ClientError, httpErrorBody, type HttpError, orgNeeded, toHttpError } from "./ErrorResponse.js"
import { errorPage, htmlHeaders, prefersHtml } from "./Pages.js"

/** A JSON answer; `close` ends the connection after it. */
export const writeJson = (res: http.ServerResponse, status: number, body: unknown, close = false, headers: Record<string, string> = {}) =>
  Effect.sync(() => {
    if (res.headersSent) return void res.destroy()
    const text = JSON.stringify(body)
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
      ...headers,
      ...(close ? { connection: "close" } : {})
    })
    res.end(text)
  })

/** An HTML answer (`Pages`); `close` ends the connection after it. */
export const writeHtml = (res: http.ServerResponse, status: number, html: string, close = false, headers: Record<string, string | ReadonlyArray<string>> = {}) =>
  Effect.sync(() => {
    if (res.headersSent) return void res.destroy()
    res.writeHead(status, {
      ...htmlHeaders,
      "content-length": Buffer.byteLength(html),
      ...headers,
      ...(close ? { connection: "close" } : {})
    })
    res.end(html)
  })

/** How long a refused request's unread body is still read (and dropped) so the client sees the answer. */
const lingerMs = 2000

/**
 * An expected failure as its status and JSON body (logged at debug); to a browser (`Accept`
 * naming `text/html`) as a small HTML page with the same status. A request refused before its
 * body was read (413, 503 busy) lingers: the rest of the body is read and dropped for a moment, so
 * a client still sending gets the answer instead of a reset; one that keeps sending past that is
 * cut. A client too slow to send its body (408) is disconnected.
 */
export const writeError = (res: http.ServerResponse, e: ClientError) => {
  const error = toHttpError(e)
  const unreadBody = e._tag === "PayloadTooLarge" || e._tag === "BodyBudgetExhausted"
  const close = e._tag === "BodyReadTimeout"
  const headers: Record<string, string> = e._tag === "BodyBudgetExhausted" ? { "retry-after": "1" } : {}
  return Effect.logDebug("request.failed").pipe(
    Effect.annotateLogs({ status: error.status, error: error.error }),
    Effect.zipRight(
      prefersHtml(res.req?.headers.accept)
        ? writeHtml(res, error.status, errorPage(error, orgNeeded(e)), close, headers)
        : writeJson(res, error.status, { error: error.error, message: error.message }, close, headers)
    ),
    Effect.zipRight(Effect.sync(() => {
      if (unreadBody) linger(res)
      if (e._tag === "BodyReadTimeout") res.once("finish", () => res.req.socket.destroy())
    }))
  )
}

const linger = (res: http.ServerResponse) => {
  const req = res.req
  if (req.complete) return
  req.resume()
  const socket = req.socket
  const cut = setTimeout(() => socket.destroy(), lingerMs)
  cut.unref()
  req.once("end", () => clearTimeout(cut))
  socket.once("close", () => clearTimeout(cut))
}

/** A raw answer on a socket, then the connection ends. */
export const writeRaw = (socket: Duplex, status: number, headers: Record<string, string | number>, body = "") =>
  Effect.sync(() => {
    if (!socket.writable) return
    const lines = Object.entries({ ...headers, "content-length": Buffer.byteLength(body), connection: "close" })
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join("")
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ""}\r\n${lines}\r\n${body}`)
  })

/**
 * Refuses an upgrade with an error's status and JSON body. Nothing more is read from the socket;
 * it is destroyed a moment after the answer went out, whatever the client still sends.
 */
export const rejectUpgrade = (socket: Duplex, error: HttpError) =>
  Effect.zipRight(
    writeRaw(socket, error.status, { "content-type": "application/json" }, httpErrorBody(error)),
    Effect.sync(() => {
      const cut = setTimeout(() => socket.destroy(), 1000)
      cut.unref()
      socket.once("close", () => clearTimeout(cut))
    })
  )

export const rejectUpgradeWith = (socket: Duplex, e: ClientError) => rejectUpgrade(socket, toHttpError(e))
