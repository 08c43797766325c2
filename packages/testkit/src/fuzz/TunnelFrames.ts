/**
 * Generator 1: what an authenticated host can send on its tunnel. Mutations of every host->relay
 * message (fields missing or of the wrong type, unknown types, ids of requests in flight, already
 * answered or never sent, statuses out of range, headers of every wrong shape, huge strings, deep
 * nesting), text that is not a message, binary frames, invalid UTF-8, and `ws:frame`/`ws:close`
 * for channels that exist or not; interleaved with client requests through that host and valid
 * answers to them, so that bad frames meet requests in flight.
 */
import type { GenOptions } from "./KnownBugs.js"
import type { Prng } from "./Prng.js"
import { anyJson, deepJson, hugeString, invalidUtf8, oddString, RawJson, safeHeaders, size, toJson } from "./Values.js"

/** The ids a frame can name, as the evil host knows them when the frame is sent. */
export interface IdSource {
  /** A request the relay sent and the host has not answered (`u` in [0, 1) picks which). */
  readonly inflight: (u: number) => string | undefined
  /** A request the host already answered. */
  readonly answered: (u: number) => string | undefined
  /** A client WebSocket channel the relay opened on this tunnel. */
  readonly channel: (u: number) => string | undefined
}

export interface BuiltFrame {
  readonly data: string | Buffer
  readonly binary: boolean
  /** What was changed, for the report. */
  readonly detail?: string
}

export type TunnelInput =
  /** A client request through the evil host (`/hosts/fuzz:evil/r/<nonce>`), checked at the end of the batch. */
  | { readonly _tag: "Request"; readonly note: string; readonly method: string; readonly body: Buffer }
  /** A client WebSocket through the evil host, so that it has channel ids to send frames for. */
  | { readonly _tag: "Channel"; readonly note: string }
  /** A valid answer to a request in flight (sent twice when `twice`). */
  | { readonly _tag: "Respond"; readonly note: string; readonly u: number; readonly status: number; readonly headers: Record<string, string | Array<string>>; readonly base64: boolean; readonly twice: boolean }
  /** Any other frame; built when sent, from the ids known then. */
  | { readonly _tag: "Frame"; readonly note: string; readonly build: (ids: IdSource) => BuiltFrame }

type Message = Record<string, unknown>

/** An id for a frame: one in flight, answered, a channel's, unknown, or not an id at all. */
const pickId = (r: Prng, ids: IdSource): { readonly id: unknown; readonly what: string } => {
  const u = r.next()
  const choice = r.weighted<string>([["inflight", 40], ["answered", 15], ["channel", 20], ["unknown", 15], ["weird", 10]])
  const known = choice === "inflight" ? ids.inflight(u) : choice === "answered" ? ids.answered(u) : choice === "channel" ? ids.channel(u) : undefined
  if (known !== undefined) return { id: known, what: choice }
  if (choice === "weird") {
    return {
      id: r.pick<unknown>(["", "x".repeat(65), "x".repeat(10_000), 1, -1, null, [], {}, ["1"], "__proto__", "constructor", " 1", "1 ", "01", "1.0", "c1\u0000", oddString(r, 8)]),
      what: "weird"
    }
  }
  return { id: r.chance(0.5) ? String(r.int(1, 100_000)) : `c${r.int(1, 1000)}`, what: choice === "unknown" ? "unknown" : `${choice} (none yet)` }
}

const wrongStatus = [-1, 0, 1, 99, 100, 101, 103, 199, 600, 999, 1e9, 200.5, "200", null, true, [200], {}, 2 ** 53, -0, 1e308]

const wrongHeaders = (r: Prng): { readonly value: unknown; readonly what: string } =>
  r.weighted<() => { value: unknown; what: string }>([
    [() => ({ value: r.pick<unknown>([[], 5, "content-type: text/plain", null, true]), what: "headers not an object" }), 3],
    [() => ({ value: { a: r.pick<unknown>([1, null, true, {}, [1], [["x"]], [null]]) }, what: "header value of a wrong type" }), 3],
    [() => ({ value: { [r.pick(["", "bad name", "x\r\ny", "x:y", "é", "\u0000", "(x)"])]: "v" }, what: "header name not a token" }), 3],
    [() => ({ value: { x: r.pick(["a\r\nset-cookie: injected=1", "\u0000", "\u4e2d", "\ud800", "a\nb", " leading"]) }, what: "header value with bad characters" }), 3],
    [() => ({ value: new RawJson(`{"__proto__":{"x":"1"},"content-type":"text/plain"}`), what: "__proto__ header" }), 1],
    [() => ({ value: { [r.pick(["constructor", "toString", "hasOwnProperty", "valueOf"])]: "x" }, what: "Object.prototype name as header" }), 1],
    [() => ({ value: r.pick([{ "content-length": "5" }, { "content-length": "abc" }, { "content-length": ["1", "2"] }, { "Content-Length": "0" }]), what: "host's own content-length" }), 2],
    [() => ({ value: r.pick([{ "transfer-encoding": "chunked" }, { connection: "content-type, x-a" }, { "Content-Type": "a", "content-type": "b" }, { upgrade: "h2c" }]), what: "hop-by-hop or duplicate headers" }), 2],
    [() => ({ value: { x: hugeString(r, 200_000) }, what: "header value over 64 KiB" }), 0.5],
    [() => ({ value: Object.fromEntries(Array.from({ length: r.int(1000, 5000) }, (_, i) => [`h${i}`, "v"])), what: "thousands of headers" }), 0.5],
    [() => ({ value: { "set-cookie": Array.from({ length: r.int(0, 3000) }, (_, i) => `c${i}=1`) }, what: "long set-cookie array" }), 0.5]
  ])()

/** A valid message of one type, for an id of `pickId`. */
const validMessage = (r: Prng, ids: IdSource): { readonly message: Message; readonly what: string } => {
  const type = r.weighted<string>([["http:response", 50], ["ws:frame", 20], ["ws:close", 15], ["pong", 15]])
  const { id, what } = pickId(r, ids)
  switch (type) {
    case "http:response":
      return { message: { type, id, status: r.pick([200, 204, 304, 404, 500]), headers: safeHeaders(r), body: "fuzz" }, what: `${type} id ${what}` }
    case "ws:frame":
      return { message: { type, id, data: oddString(r, r.int(0, 20)) }, what: `${type} id ${what}` }
    case "ws:close":
      return { message: { type, id, code: 1000, reason: "fuzz" }, what: `${type} id ${what}` }
    default:
      return { message: { type, ts: r.int(0, 2 ** 31) }, what: type }
  }
}

/** One change to a message that makes it wrong (or odd but valid). */
const mutate = (r: Prng, m: Message, gen: GenOptions): string => {
  const keys = Object.keys(m)
  if (keys.length === 0) keys.push("type")
  return r.weighted<() => string>([
    [() => {
      const k = r.pick(keys)
      delete m[k]
      return `no ${k}`
    }, 3],
    [() => {
      const k = r.pick(keys)
      m[k] = anyJson(r, gen.maxFieldNesting)
      return `${k} of a wrong type`
    }, 4],
    [() => {
      m.type = r.pick<unknown>(["HTTP:RESPONSE", "http:response ", "http", "ping", "drain", "http:cancel", "ws:open", "", 1, null, ["pong"], oddString(r, 6)])
      return `type ${JSON.stringify(m.type)}`
    }, 3],
    [() => {
      m.status = r.pick(wrongStatus)
      return `status ${JSON.stringify(m.status)}`
    }, 3],
    [() => {
      const h = wrongHeaders(r)
      m.headers = h.value
      return h.what
    }, 5],
    [() => {
      m.body = r.weighted<() => unknown>([[() => hugeString(r), 1], [() => anyJson(r, gen.maxFieldNesting), 2], [() => "!!!not base64", 1]])()
      if (r.chance(0.5)) m.bodyEncoding = "base64"
      return "odd body"
    }, 3],
    [() => {
      m.bodyEncoding = r.pick<unknown>(["hex", "BASE64", "", null, 1, "utf8"])
      return `bodyEncoding ${JSON.stringify(m.bodyEncoding)}`
    }, 2],
    [() => {
      m.code = r.pick<unknown>([0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65536, -1, 1.5, 1000.5, 3000.25, "1000", null, 1e20])
      return `close code ${JSON.stringify(m.code)}`
    }, 3],
    [() => {
      m.reason = r.pick<unknown>([hugeString(r, 300_000), "x".repeat(124), "é".repeat(100), "\ud800", "\u0000", 5])
      return "odd close reason"
    }, 2],
    [() => {
      m.data = r.weighted<() => unknown>([[() => hugeString(r), 1], [() => "%%%", 1], [() => anyJson(r, gen.maxFieldNesting), 1]])()
      if (r.chance(0.5)) m.encoding = r.pick<unknown>(["base64", "hex", 1])
      return "odd ws data"
    }, 2],
    [() => {
      m[r.pick(["__proto__", "constructor", "extra", oddString(r, 5)])] = anyJson(r, gen.maxFieldNesting)
      return "extra field"
    }, 2],
    [() => {
      m.nested = new RawJson(deepJson(r.int(Math.min(1000, gen.maxFieldNesting), gen.maxFieldNesting), r.chance(0.5) ? "array" : "object"))
      return "deep nesting"
    }, 1]
  ])()
}

/** Text that is not one message: not JSON, not an object, truncated, duplicated keys, deeply nested. */
const notAMessage = (r: Prng, ids: IdSource): { readonly text: string; readonly what: string } => {
  const valid = toJson(validMessage(r, ids).message)
  return r.weighted<() => { text: string; what: string }>([
    [() => ({ text: r.pick(["", " ", "null", "[]", "1", "\"x\"", "{", "}", "{}", "{\"type\":1}", "true", "[{\"type\":\"pong\",\"ts\":1}]"]), what: "not a message" }), 4],
    [() => ({ text: valid.slice(0, r.int(0, Math.max(0, valid.length - 1))), what: "truncated message" }), 3],
    [() => ({ text: valid + r.pick(["}", " x", "\u0000", "{}"]), what: "message and trailing bytes" }), 2],
    [() => ({ text: "\ufeff" + valid, what: "BOM and message" }), 1],
    [() => ({ text: `{"type":"pong","ts":1,"type":"http:response","id":"1","status":200,"headers":{},"id":"${r.int(1, 50)}"}`, what: "duplicate keys" }), 2],
    [() => ({ text: deepJson(r.int(1000, 100_000), r.chance(0.5) ? "array" : "object"), what: "deep nesting" }), 1],
    [() => ({ text: " ".repeat(r.int(1, 1024 * 1024)), what: "whitespace" }), 0.5],
    [() => ({ text: oddString(r, r.int(1, 200)), what: "odd characters" }), 2]
  ])()
}

/** One input of generator 1. */
export const tunnelInput = (r: Prng, gen: GenOptions): TunnelInput => {
  const kind = r.weighted<string>([["request", 12], ["channel", 2], ["respond", 12], ["mutated", 45], ["text", 12], ["binary", 10], ["utf8", 1]])
  const fr = r.fork("frame")
  switch (kind) {
    case "request": {
      const method = r.pick(["GET", "GET", "POST", "PUT", "DELETE", "HEAD"])
      const body = method === "GET" || method === "HEAD" ? Buffer.alloc(0) : r.bytes(size(r, 70_000))
      return { _tag: "Request", note: `client ${method} through the evil host (${body.length} B body)`, method, body }
    }
    case "channel":
      return { _tag: "Channel", note: "client WebSocket through the evil host" }
    case "respond": {
      const status = r.pick([200, 201, 204, 301, 404, 418, 500, 503, 599])
      const twice = r.chance(0.2)
      return {
        _tag: "Respond",
        note: `valid http:response ${status} for a request in flight${twice ? ", sent twice" : ""}`,
        u: r.next(),
        status,
        headers: safeHeaders(r),
        base64: r.chance(0.3),
        twice
      }
    }
    case "mutated": {
      const count = r.int(1, 3)
      return {
        _tag: "Frame",
        note: "mutated message",
        build: (ids) => {
          const { message, what } = validMessage(fr, ids)
          const headers = message.headers
          const changes = Array.from({ length: count }, () => mutate(fr, message, gen))
          // Once a bug (KnownBugs.ts): a 204/304 with headers the relay cannot write breaks the client's connection.
          if (!gen.bodilessBadHeaders && message.headers !== headers && (message.status === 204 || message.status === 304)) message.status = 200
          return { data: toJson(message), binary: fr.chance(0.05), detail: `${what}: ${changes.join(", ")}` }
        }
      }
    }
    case "text":
      return {
        _tag: "Frame",
        note: "text that is not a message",
        build: (ids) => {
          const { text, what } = notAMessage(fr, ids)
          return { data: text, binary: false, detail: what }
        }
      }
    case "binary":
      return {
        _tag: "Frame",
        note: "binary frame",
        build: (ids) => {
          const choice = fr.weighted<() => Buffer>([
            [() => Buffer.alloc(0), 1],
            [() => fr.bytes(size(fr)), 3],
            [() => invalidUtf8(fr), 2],
            [() => Buffer.from(toJson(validMessage(fr, ids).message)), 2]
          ])
          return { data: choice(), binary: true }
        }
      }
    default:
      // The relay's WebSocket closes the tunnel 1007: the evil host reconnects.
      return { _tag: "Frame", note: "text frame of invalid UTF-8 (closes the tunnel)", build: () => ({ data: invalidUtf8(fr), binary: false }) }
  }
}
