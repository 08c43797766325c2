/**
 * Generator 3: raw HTTP requests to `/hosts/fuzz:h/...`: odd methods, paths with `..`, `%00`,
 * `%2e%2e` and 8-20 KB long, Content-Length and Transfer-Encoding duplicated or in conflict, bad
 * chunk sizes, folded headers, no Host, bodies that stop midway, pipelined requests, half-closes.
 */
import type { FuzzTokens } from "./FuzzTokens.js"
import type { Prng } from "./Prng.js"
import type { RawPlan } from "./RawTcp.js"
import type { RawInput } from "./Upgrades.js"
import { invalidUtf8, size } from "./Values.js"

const methods = ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "QUERY", "MKCOL", "get", "FOO", "G E T", "GET\u0000", "M".repeat(100), "PRI", ""]

const path = (r: Prng): { readonly text: string; readonly what: string } =>
  r.weighted<() => { text: string; what: string }>([
    [() => ({ text: `/hosts/fuzz:h/echo/${r.int(0, 1e6)}`, what: "" }), 30],
    [() => ({ text: `/hosts/fuzz:h${r.pick(["/../../etc/passwd", "/%2e%2e/%2e%2e/metrics", "/..%2f..%2fhealth", "/a%00b", "/%", "/%zz", "//x", "/a#frag", "/?&&&=", "/a?token=x&token=y", "/\\..\\..", "/%c0%ae%c0%ae/"])}`, what: "odd path" }), 15],
    [() => ({ text: r.pick(["/hosts/fuzz:h", "/hosts/fuzz%3Ah/", "/hosts/FUZZ:h/", "/hosts/", "/hosts//x", "/hosts/fuzz:h:x/", "/hosts/%/x", "/hosts/fuzz:good/../fuzz:h/x", "/hosts/fuzz:h/../../metrics"]), what: "odd host route" }), 8],
    [() => ({ text: r.pick(["*", "http://evil.example/hosts/fuzz:h/", "hosts/fuzz:h/", "//hosts/fuzz:h/", "/health/../hosts/fuzz:h/"]), what: "odd request target" }), 4],
    [() => ({ text: `/hosts/fuzz:h/${"p".repeat(r.int(2000, 20_000))}`, what: "long path" }), 4],
    [() => ({ text: `/hosts/fuzz:h/${Buffer.from(invalidUtf8(r)).toString("latin1")}`, what: "raw bytes in path" }), 4]
  ])()

/**
 * How the body is framed: no body, a fitting Content-Length, or framing that lies or conflicts.
 * `mayWait`: the relay may rightly wait for more bytes (a body that stops midway, or framing whose
 * reading is not certain), so no answer is owed while the connection stays open.
 */
const framing = (r: Prng, body: Buffer): { readonly headers: Array<string>; readonly body: Buffer; readonly what: string; readonly mayWait: boolean } => {
  const len = body.length
  const chunk = (b: Buffer) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from("\r\n")])
  const chunked = Buffer.concat([chunk(body.subarray(0, len >> 1)), chunk(body.subarray(len >> 1)), Buffer.from("0\r\n\r\n")])
  return r.weighted<() => { headers: Array<string>; body: Buffer; what: string; mayWait: boolean }>([
    [() => ({ headers: [], body: Buffer.alloc(0), what: "", mayWait: false }), 25],
    [() => ({ headers: [`Content-Length: ${len}`], body, what: `${len} B body`, mayWait: false }), 20],
    [() => ({ headers: ["Transfer-Encoding: chunked"], body: chunked, what: "chunked body", mayWait: false }), 8],
    [() => ({ headers: [`Content-Length: ${len}`, `Content-Length: ${len}`], body, what: "Content-Length twice", mayWait: false }), 3],
    [() => ({ headers: [`Content-Length: ${len}`, `Content-Length: ${len + 5}`], body, what: "conflicting Content-Lengths", mayWait: true }), 3],
    [() => ({ headers: [`Content-Length: ${len}`, "Transfer-Encoding: chunked"], body: chunked, what: "Content-Length and chunked", mayWait: true }), 3],
    [() => ({ headers: [`Transfer-Encoding: ${r.pick(["chunked, gzip", "gzip", "xchunked", "chunked\u0000", " chunked", "identity"])}`], body: chunked, what: "odd Transfer-Encoding", mayWait: true }), 3],
    [() => ({ headers: ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], body: chunked, what: "Transfer-Encoding twice", mayWait: false }), 2],
    [() => ({
      headers: ["Transfer-Encoding: chunked"],
      body: Buffer.from(`${r.pick(["zz", "-1", "ffffffffffffffffff", "1;ext=\u0000", "5", "0x5", " 5", "5 ", ""])}\r\nhello\r\n${r.chance(0.5) ? "0\r\n\r\n" : ""}`, "latin1"),
      what: "bad chunk size",
      mayWait: true
    }), 5],
    [() => ({ headers: ["Transfer-Encoding: chunked"], body: Buffer.from("5\r\nhello\r\n0\r\nX-Trailer: a\r\nContent-Length: 99\r\n\r\n"), what: "chunked with trailers", mayWait: false }), 2],
    [() => ({ headers: [`Content-Length: ${r.pick(["-1", "1e3", " 5 ", "5 5", "0x10", "99999999999999999999", String(11 * 1024 * 1024), "abc", ""])}`], body, what: "odd Content-Length", mayWait: true }), 5],
    [() => ({ headers: [`Content-Length: ${len + r.int(1, 100_000)}`], body, what: "body stops midway", mayWait: true }), 6],
    [() => ({ headers: [`Content-Length: ${len >> 1}`], body, what: "body longer than its Content-Length", mayWait: false }), 3]
  ])()
}

const oddHeaders = (r: Prng, tokens: FuzzTokens): { readonly lines: Array<string>; readonly what: string } =>
  r.weighted<() => { lines: Array<string>; what: string }>([
    [() => ({ lines: [], what: "" }), 50],
    [() => ({ lines: ["X-Fold: a", " folded"], what: "folded header" }), 3],
    [() => ({ lines: ["Expect: 100-continue"], what: "Expect: 100-continue" }), 3],
    [() => ({ lines: [r.pick(["Connection: close", "Connection: keep-alive, x-forwarded-for, authorization", "Connection: Upgrade", "Upgrade: h2c", "TE: trailers", "Keep-Alive: timeout=1"])], what: "connection headers" }), 5],
    [() => ({ lines: ["X-Forwarded-For: 10.0.0.1", "X-Forwarded-Host: evil", "X-Forwarded-Proto: gopher"], what: "forged X-Forwarded-*" }), 3],
    [() => ({ lines: [r.pick(["no colon", "Bad Name: x", ": x", "X-Nul: a\u0000b", "X-Ctl: \u0001", "X-Lf: a\nb"])], what: "malformed header line" }), 4],
    [() => ({ lines: Array.from({ length: r.int(100, 3000) }, (_, i) => `X-H${i}: ${i}`), what: "many headers" }), 3],
    [() => ({ lines: [`X-Big: ${"b".repeat(r.int(8_000, 40_000))}`], what: "huge header" }), 3],
    [() => ({ lines: [`Authorization: Bearer ${tokens.valid}`], what: "Authorization twice" }), 2],
    [() => ({ lines: [`Cookie: ${"c=1; ".repeat(r.int(10, 2000))}`], what: "long cookie" }), 2]
  ])()

/** One complete-or-not request's bytes. */
const request = (r: Prng, tokens: FuzzTokens): { readonly bytes: Buffer; readonly what: string; readonly mayWait: boolean } => {
  const method = r.weighted<string>([["GET", 30], ["POST", 20], ["other", 50]])
  const m = method === "other" ? r.pick(methods) : method
  const p = path(r)
  const version = r.weighted<string>([["HTTP/1.1", 90], ["HTTP/1.0", 6], ["HTTP/2.0", 2], ["", 2]])
  const hostLine = r.weighted<Array<string>>([[["Host: relay"], 90], [[], 5], [["Host: a", "Host: b"], 3], [["Host: "], 2]])
  const authLine = r.weighted<Array<string>>([[[`Authorization: Bearer ${tokens.valid}`], 75], [[], 10], [[`Authorization: Bearer ${r.pick(tokens.hostile).token}`], 15]])
  const f = framing(r, r.bytes(size(r, 200_000)))
  const extra = oddHeaders(r, tokens)
  const head = [`${m} ${p.text}${version === "" ? "" : ` ${version}`}`, ...hostLine, ...authLine, ...f.headers, ...extra.lines].join("\r\n") + "\r\n\r\n"
  const what = [m === "GET" ? "" : `method ${JSON.stringify(m.slice(0, 12))}`, p.what, version === "HTTP/1.1" ? "" : `version ${JSON.stringify(version)}`, hostLine.length === 1 && hostLine[0] === "Host: relay" ? "" : "odd Host", authLine.length === 0 ? "no token" : authLine[0]!.includes(tokens.valid) ? "" : "hostile token", f.what, extra.what]
  return { bytes: Buffer.concat([Buffer.from(head, "latin1"), f.body]), what: what.filter((w) => w !== "").join(", ") || "plain GET", mayWait: f.mayWait }
}

/** One input of generator 3: one request, or a few pipelined, sent whole or in pieces, then half-closed, held or reset. */
export const httpInput = (r: Prng): ((tokens: FuzzTokens) => RawInput) => {
  const count = r.weighted<number>([[1, 85], [2, 8], [r.int(3, 8), 7]])
  const requests = Array.from({ length: count }, (_, i) => r.fork(`request ${i}`))
  const pieces = r.weighted<number>([[1, 80], [r.int(2, 6), 20]])
  const cuts = Array.from({ length: pieces - 1 }, () => r.next()).sort()
  const finish = r.weighted<RawPlan["finish"]>([["end", 30], ["hold", 50], ["destroy", 20]])
  const holdMs = r.int(150, 1200)
  return (tokens) => {
    const made = requests.map((rr) => request(rr, tokens))
    const bytes = Buffer.concat(made.map((m) => m.bytes))
    const at = [0, ...cuts.map((c) => Math.floor(c * bytes.length)), bytes.length]
    const parts = at.slice(1).map((end, i) => bytes.subarray(at[i]!, end)).filter((p) => p.length > 0)
    const midway = made.some((m) => m.mayWait)
    return {
      note: `http ${count > 1 ? `${count} pipelined: ` : ""}${made.map((m) => m.what).join(" | ")}${pieces > 1 ? `; in ${pieces} pieces` : ""}; ${finish}`,
      plan: { parts, gapMs: pieces > 1 ? 15 : 0, finish, holdMs, owed: !midway && finish !== "destroy" }
    }
  }
}
