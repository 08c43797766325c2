/**
 * Hostile values the generators share: sizes that sit on boundaries, strings with the characters
 * parsers trip on, invalid UTF-8, deep nesting, and a JSON writer that can splice raw text (a
 * nesting too deep to build as objects, a key JSON.stringify would not write twice).
 */
import type { Prng } from "./Prng.js"

/** Sizes around the limits a WebSocket or the relay draws (125/126, 64 KiB, 1 MiB), or small, or large. */
export const size = (r: Prng, max = 1024 * 1024 + 1024): number =>
  Math.min(
    max,
    r.weighted<() => number>([
      [() => r.int(0, 64), 50],
      [() => r.int(65, 4096), 25],
      [() => r.pick([0, 1, 125, 126, 127, 65535, 65536, 65537, 1048575, 1048576, 1048577]), 15],
      [() => r.int(4097, max), 10]
    ])()
  )

const alphabets = [
  "abcdefghijklmnopqrstuvwxyz0123456789",
  "\u0000\u0001\u0007\b\t\n\u000b\f\r\u001b\u007f",
  "\"\\/'`{}[]:,;<>?&%#=+",
  "éüß€中文ﾃｽﾄ\u200b\u202e\ufeff\uffff",
  "\ud83d\ude00\ud800\udc00",
  "\ud800\udfff\udc00" // lone surrogates when picked one at a time
]

/** `n` characters mixed from alphabets that parsers and header writers trip on. */
export const oddString = (r: Prng, n = r.int(0, 40)): string => {
  let out = ""
  for (let i = 0; i < n; i++) {
    const alphabet = r.pick(alphabets)
    out += alphabet[r.int(0, alphabet.length - 1)]
  }
  return out
}

/** A long string (up to ~1 MB): one character repeated, or a short odd string repeated. */
export const hugeString = (r: Prng, max = 1024 * 1024): string => {
  const n = r.int(64 * 1024, max)
  const unit = r.chance(0.5) ? r.pick(["x", " ", "\u0000", "é", "\\", "\""]) : oddString(r, r.int(1, 16))
  return unit.repeat(Math.ceil(n / Math.max(1, unit.length))).slice(0, n)
}

/** Bytes that are not UTF-8: overlong forms, surrogates, truncated sequences, bytes never valid. */
export const invalidUtf8 = (r: Prng): Buffer => {
  const bad = [[0xc0, 0x80], [0xed, 0xa0, 0x80], [0xff], [0xfe], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xf0, 0x9f, 0x98]]
  const parts: Array<Buffer> = []
  const n = r.int(1, 6)
  for (let i = 0; i < n; i++) {
    if (r.chance(0.5)) parts.push(Buffer.from(oddString(r, r.int(0, 8)).replace(/[\ud800-\udfff]/g, "?")))
    parts.push(Buffer.from(r.pick(bad)))
  }
  return Buffer.concat(parts)
}

/** JSON text nested `depth` levels deep (arrays or objects), built as text: no recursion here. */
export const deepJson = (depth: number, kind: "array" | "object"): string =>
  kind === "array" ? "[".repeat(depth) + "]".repeat(depth) : "{\"a\":".repeat(depth) + "1" + "}".repeat(depth)

/** JSON text written as is by `toJson`. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** JSON.stringify for plain values, arrays and objects, writing `RawJson` as its text. One level of recursion per level of the value. */
export const toJson = (value: unknown): string => {
  if (value instanceof RawJson) return value.text
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(",")}}`
  }
  return JSON.stringify(value) ?? "null"
}

/** A JSON value of any type, shallow unless `depth` says otherwise; now and then nested up to `maxNesting` levels. */
export const anyJson = (r: Prng, maxNesting: number, depth = 2): unknown =>
  r.weighted<() => unknown>([
    [() => null, 1],
    [() => r.chance(0.5), 1],
    [() => r.pick([0, -0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, 4294967296, NaN, Infinity]), 2],
    [() => oddString(r), 3],
    [() => (depth > 0 ? Array.from({ length: r.int(0, 4) }, () => anyJson(r, maxNesting, depth - 1)) : []), 1],
    [() => (depth > 0 ? Object.fromEntries(Array.from({ length: r.int(0, 4) }, () => [oddString(r, r.int(0, 6)), anyJson(r, maxNesting, depth - 1)])) : {}), 1],
    [() => new RawJson(deepJson(r.int(Math.min(100, maxNesting), maxNesting), r.chance(0.5) ? "array" : "object")), 0.3],
    [() => hugeString(r), 0.2]
  ])()

/** Plain header names and values that any HTTP writer accepts. */
export const safeHeaders = (r: Prng): Record<string, string | Array<string>> => {
  const out: Record<string, string | Array<string>> = {}
  const n = r.int(0, 4)
  for (let i = 0; i < n; i++) out[`x-fuzz-${i}`] = r.chance(0.2) ? [`v${r.int(0, 9)}`, `w${r.int(0, 9)}`] : `v${r.int(0, 99999)}`
  if (r.chance(0.5)) out["content-type"] = r.pick(["text/plain", "application/json", "application/octet-stream"])
  return out
}
