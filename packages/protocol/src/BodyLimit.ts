/**
 * Reading a whole HTTP body into memory, never more than a limit: a body declared larger is
 * refused before a byte is read, and one that grows past the limit is refused as soon as it
 * does. The relay reads client request bodies this way, the host agent target responses.
 */
import type { IncomingMessage } from "node:http"

export type Collected =
  | { readonly _tag: "Body"; readonly body: Buffer }
  | { readonly _tag: "TooLarge" }
  | { readonly _tag: "NotAdmitted" }
  | { readonly _tag: "Failed"; readonly detail: string }

export interface CollectOptions {
  /** Wait for a body even without a length or chunked encoding (a response read until the connection ends). */
  readonly expectBody?: boolean
  /** Asked before each chunk is kept: false ends the read with `NotAdmitted` (no room left for it). */
  readonly admit?: (bytes: number) => boolean
}

const noBody = Buffer.alloc(0)

/** The declared `content-length`, when there is a valid one. */
export const declaredLength = (message: IncomingMessage): number | undefined => {
  const value = message.headers["content-length"]
  if (value === undefined) return undefined
  const n = Number(value)
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

/** Whether a request carries no body at all (no length, or 0, and no chunked encoding). */
export const hasNoBody = (message: IncomingMessage): boolean =>
  (declaredLength(message) ?? 0) === 0 && message.headers["transfer-encoding"] === undefined

/**
 * Collects `message`'s body, up to `limit` bytes; `done` is called once. Returns a function that
 * stops listening (for a caller that gives up first). On `TooLarge` the rest of the body is left
 * unread: the caller decides whether to drain it or drop the connection.
 */
export const collect = (
  message: IncomingMessage,
  limit: number,
  done: (result: Collected) => void,
  options: CollectOptions = {}
): () => void => {
  if ((declaredLength(message) ?? 0) > limit) {
    done({ _tag: "TooLarge" })
    return () => {}
  }
  if (options.expectBody !== true && hasNoBody(message)) {
    // Most GETs: nothing to wait for.
    message.resume()
    done({ _tag: "Body", body: noBody })
    return () => {}
  }
  const chunks: Array<Buffer> = []
  let size = 0
  let finished = false
  const cleanup = () => {
    message.off("data", onData)
    message.off("end", onEnd)
    message.off("error", onError)
    message.off("close", onClose)
  }
  const finish = (result: Collected) => {
    if (finished) return
    finished = true
    cleanup()
    done(result)
  }
  const onData = (chunk: Buffer) => {
    size += chunk.length
    if (size > limit) return finish({ _tag: "TooLarge" })
    if (options.admit !== undefined && !options.admit(chunk.length)) return finish({ _tag: "NotAdmitted" })
    chunks.push(chunk)
  }
  const onEnd = () => finish({ _tag: "Body", body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) })
  const onError = (error: Error) => finish({ _tag: "Failed", detail: error.message })
  const onClose = () => {
    if (!message.complete) finish({ _tag: "Failed", detail: "connection closed before the body ended" })
  }
  message.on("data", onData)
  message.on("end", onEnd)
  message.on("error", onError)
  message.on("close", onClose)
  return () => {
    finished = true
    cleanup()
  }
}
