/**
 * Writing the relay's own answers: JSON bodies on a `ServerResponse`, and raw HTTP/1.1 answers
 * on a socket whose upgrade is refused (no `ServerResponse` exists for those).
 */
import { Effect } from "effect"
import * as http from "node:http"
import type { Duplex } from "node:stream"
import { type ClientError, httpErrorBody, type HttpError, toHttpError } from "./ErrorResponse.js"

/** A JSON answer; `close` ends the connection after it (a refused upload's body is not read). */
export const writeJson = (res: http.ServerResponse, status: number, body: unknown, close = false) =>
  Effect.sync(() => {
    if (res.headersSent) return void res.destroy()
    const text = JSON.stringify(body)
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
      ...(close ? { connection: "close" } : {})
    })
    res.end(text)
  })

/** An expected failure as its status and JSON body (logged at debug). */
export const writeError = (res: http.ServerResponse, e: ClientError) => {
  const error = toHttpError(e)
  return Effect.logDebug("request.failed").pipe(
    Effect.annotateLogs({ status: error.status, error: error.error }),
    Effect.zipRight(writeJson(res, error.status, { error: error.error, message: error.message }, e._tag === "PayloadTooLarge"))
  )
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

/** Refuses an upgrade with an error's status and JSON body. */
export const rejectUpgrade = (socket: Duplex, error: HttpError) =>
  writeRaw(socket, error.status, { "content-type": "application/json" }, httpErrorBody(error))

export const rejectUpgradeWith = (socket: Duplex, e: ClientError) => rejectUpgrade(socket, toHttpError(e))
