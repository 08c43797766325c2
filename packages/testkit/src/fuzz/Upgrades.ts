/**
 * Generator 2: WebSocket upgrade requests on `/tunnel` and `/hosts/...` over raw TCP, most of them
 * refused: malformed hostIds (odd bytes, 8 KB long, missing, repeated), hostile tokens, a missing
 * or bad handshake, huge headers, an incomplete request, and raw bytes after the request (after
 * a 101 they are read as WebSocket framing). Those bytes wait for the answer: sent earlier (in the
 * request's packet, or while the token is checked), they crashed the relay once (KnownBugs.ts).
 */
import type { FuzzTokens } from "./FuzzTokens.js"
import type { GenOptions } from "./KnownBugs.js"
import type { Prng } from "./Prng.js"
import type { RawPlan } from "./RawTcp.js"
import { invalidUtf8, size } from "./Values.js"

/** Host ids the fuzz's own hosts hold: a valid upgrade must never take one of them over. */
export const reservedHostIds = new Set(["fuzz:good", "fuzz:h", "fuzz:evil"])

export interface RawInput {
  readonly note: string
  readonly plan: RawPlan
}

/** A hostId as a query parameter value or path segment, with what is odd about it. */
const hostIdText = (r: Prng, base: string): { readonly text: string; readonly what: string } =>
  r.weighted<() => { text: string; what: string }>([
    [() => ({ text: base, what: "plain" }), 30],
    [() => ({ text: `fuzz:${"a".repeat(r.int(65, 8192))}`, what: "name over 64 characters" }), 4],
    [() => ({ text: `${"o".repeat(r.int(65, 8192))}:x`, what: "org over 64 characters" }), 2],
    [() => ({ text: base + r.pick(["%00", "%ff", "%zz", "%", "%C0%80", "%E2%80%AE", "%0d%0a", "+", "%20"]), what: "odd escape" }), 6],
    [() => ({ text: base + Buffer.from(invalidUtf8(r)).toString("latin1"), what: "raw non-ASCII bytes" }), 3],
    [() => ({ text: r.pick(["", "fuzz", ":", "fuzz:", ":x", "a:b:c", "fuzz:u1/..", "fuzz:u1%2F..", "..:..", "FUZZ:u1", "other:u1", "fuzz:u\t1"]), what: "malformed" }), 8]
  ])()

/** A request's authorization: a valid token, a hostile one, in the header or the query, or none. */
const auth = (r: Prng, tokens: FuzzTokens): { readonly header: string | undefined; readonly query: string; readonly what: string } => {
  const hostile = r.pick(tokens.hostile)
  return r.weighted<() => { header: string | undefined; query: string; what: string }>([
    [() => ({ header: `Bearer ${tokens.valid}`, query: "", what: "valid token" }), 30],
    [() => ({ header: undefined, query: `&token=${tokens.validOrgs}`, what: "valid token in the query" }), 8],
    [() => ({ header: undefined, query: "", what: "no token" }), 12],
    [() => ({ header: `Bearer ${hostile.token}`, query: "", what: `token: ${hostile.name}` }), 35],
    [() => ({
      header: r.pick(["Bearer", "Bearer ", "bearer  x", "Basic Zm9vOmJhcg==", `Bearer ${"A".repeat(r.int(4000, 20_000))}`, "Bearer \u00e9", `Bearer ${tokens.valid} extra`]),
      query: "",
      what: "odd Authorization"
    }), 10],
    [() => ({ header: `Bearer ${hostile.token}`, query: `&token=${tokens.valid}`, what: "hostile header, valid query token" }), 5]
  ])()
}

const key = "dGhlIHNhbXBsZSBub25jZQ=="

/** The handshake's lines, valid or with one thing wrong. */
const handshake = (r: Prng): { readonly lines: Array<string>; readonly method: string; readonly version: string; readonly what: string } => {
  const lines = ["Upgrade: websocket", "Connection: Upgrade", `Sec-WebSocket-Key: ${key}`, "Sec-WebSocket-Version: 13"]
  const ok = { lines, method: "GET", version: "HTTP/1.1", what: "valid handshake" }
  if (r.chance(0.45)) return ok
  return r.weighted<() => typeof ok>([
    [() => ({ ...ok, lines: lines.filter((l) => !l.startsWith("Sec-WebSocket-Key")), what: "no key" }), 3],
    [() => ({ ...ok, lines: lines.map((l) => (l.startsWith("Sec-WebSocket-Key") ? `Sec-WebSocket-Key: ${r.pick(["abc", "", "A".repeat(5000), key + key])}` : l)), what: "bad key" }), 3],
    [() => ({ ...ok, lines: lines.map((l) => (l.startsWith("Sec-WebSocket-Version") ? `Sec-WebSocket-Version: ${r.pick(["8", "99", "", "13, 13", "-1"])}` : l)), what: "bad version" }), 3],
    [() => ({ ...ok, lines: lines.filter((l) => !l.startsWith("Sec-WebSocket-Version")), what: "no version" }), 2],
    [() => ({ ...ok, lines: lines.map((l) => (l.startsWith("Upgrade") ? `Upgrade: ${r.pick(["websocketx", "h2c", "", "websocket, h2c"])}` : l)), what: "odd Upgrade" }), 3],
    [() => ({ ...ok, lines: lines.filter((l) => !l.startsWith("Connection")), what: "no Connection" }), 2],
    [() => ({ ...ok, lines: [...lines, `Sec-WebSocket-Key: ${key}`], what: "key twice" }), 2],
    [() => ({ ...ok, lines: [...lines, `Sec-WebSocket-Protocol: ${r.pick(["a, , b", "", ",", "x".repeat(3000)])}`], what: "odd subprotocols" }), 2],
    [() => ({ ...ok, lines: [...lines, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=99; x"], what: "extensions offered" }), 1],
    [() => ({ ...ok, method: r.pick(["POST", "HEAD", "PUT", "OPTIONS", "get"]), what: "not a GET" }), 3],
    [() => ({ ...ok, version: r.pick(["HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "HTTP/9", ""]), what: "odd HTTP version" }), 2]
  ])()
}

/** Extra header lines: none, one huge, very many, folded, or not a header at all. */
const extraHeaders = (r: Prng): { readonly lines: Array<string>; readonly what: string } =>
  r.weighted<() => { lines: Array<string>; what: string }>([
    [() => ({ lines: [], what: "" }), 70],
    [() => ({ lines: [`X-Big: ${"b".repeat(r.int(8_000, 40_000))}`], what: "huge header" }), 6],
    [() => ({ lines: Array.from({ length: r.int(100, 3000) }, (_, i) => `X-H${i}: v`), what: "many headers" }), 4],
    [() => ({ lines: ["X-Fold: a", " b"], what: "folded header" }), 3],
    [() => ({ lines: [r.pick(["no colon here", "Bad Name: x", ": empty name", "X-Nul: a\u0000b", "X-Ctl: \u0001"])], what: "malformed header line" }), 4],
    [() => ({ lines: r.chance(0.5) ? [] : ["Host: other"], what: "Host twice" }), 2]
  ])()

/** One input of generator 2: an upgrade request on `/tunnel` or `/hosts/...`. */
export const upgradeInput = (r: Prng, gen: GenOptions): ((tokens: FuzzTokens) => RawInput) => {
  // The choices are made now, from `r`; the tokens are only known once the run has them.
  const target = r.chance(0.6) ? "tunnel" : "hosts"
  const id = hostIdText(r, target === "tunnel" ? `fuzz:u${r.int(1, 50)}` : "fuzz:h")
  const ar = r.fork("auth")
  const hs = handshake(r)
  const extra = extraHeaders(r)
  const noHost = r.chance(0.05)
  const chosen = r.weighted<string>([["none", 55], ["with the request", 20], ["later", 25]])
  // Once a bug (KnownBugs.ts): bytes that reach the relay before an upgrade that succeeds crash it;
  // without `bytesBeforeAnswer` they wait for the answer.
  const after = gen.bytesBeforeAnswer ? chosen : chosen === "none" ? "none" : "after the answer"
  const afterBytes = after === "none" ? Buffer.alloc(0) : r.chance(0.3) ? invalidUtf8(r) : r.bytes(size(r, 70_000))
  const incomplete = r.chance(0.1)
  const split = r.chance(0.2)
  const finish = r.weighted<RawPlan["finish"]>([["end", 30], ["hold", 50], ["destroy", 20]])
  const holdMs = r.int(150, 1200)
  const cut = r.next()
  return (tokens) => {
    const a = auth(ar, tokens)
    let text = id.text
    // Never a working upgrade for a host the fuzz itself holds.
    if (target === "tunnel" && reservedHostIds.has(text)) text = `${text}x`
    const path = target === "tunnel" ? `/tunnel?hostId=${text}${a.query}` : `/hosts/${text}/ws${a.query === "" ? "" : `?${a.query.slice(1)}`}`
    const lines = [
      `${hs.method} ${path}${hs.version === "" ? "" : ` ${hs.version}`}`,
      ...(noHost ? [] : ["Host: 127.0.0.1"]),
      ...hs.lines,
      ...(a.header === undefined ? [] : [`Authorization: ${a.header}`]),
      ...extra.lines
    ]
    let request = Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1")
    if (incomplete) request = request.subarray(0, Math.floor(cut * request.length))
    const parts: Array<Buffer> = split && request.length > 2
      ? [request.subarray(0, Math.max(1, Math.floor(cut * request.length))), request.subarray(Math.max(1, Math.floor(cut * request.length)))]
      : [request]
    if (after === "with the request") parts[parts.length - 1] = Buffer.concat([parts[parts.length - 1]!, afterBytes])
    if (after === "later") parts.push(afterBytes)
    const afterAnswer = after === "after the answer" ? { after: { parts: [afterBytes], when: "answer" as const } } : {}
    const what = [target, id.what === "plain" ? "" : `hostId ${id.what}`, a.what, hs.what, extra.what, noHost ? "no Host" : "", incomplete ? "incomplete" : "", after === "none" ? "" : `${afterBytes.length} B after (${after})`]
    return {
      note: `upgrade ${what.filter((w) => w !== "").join(", ")}; ${finish}`,
      plan: { parts, ...afterAnswer, gapMs: split || after === "later" ? 20 : 0, finish, holdMs, owed: !incomplete && finish !== "destroy" }
    }
  }
}
