/**
 * Generator 4: a client WebSocket through a channel to the fuzz's own host (`fuzz:h`, which
 * echoes), upgraded properly, then frames written by hand: text and binary of random sizes (up to
 * over the 1 MiB limit), fragmented messages (with pings between the fragments, or a data frame
 * where a continuation belongs), pings over 125 bytes, close frames with codes no endpoint may
 * send, invalid UTF-8, reserved bits, unknown opcodes, unmasked frames, lengths that lie.
 */
import type { FuzzTokens } from "./FuzzTokens.js"
import type { Prng } from "./Prng.js"
import { closePayload, encodeFrame, Opcode } from "./RawWs.js"
import type { RawPlan } from "./RawTcp.js"
import type { RawInput } from "./Upgrades.js"
import { invalidUtf8, oddString, size } from "./Values.js"

const text = (r: Prng, n: number) => Buffer.from(oddString(r, n).replace(/[\ud800-\udfff]/g, "?"))

/** One frame, or a few that belong together (a fragmented message), and what they are. */
const frames = (r: Prng): { readonly bytes: Array<Buffer>; readonly what: string } => {
  const key = () => r.bytes(4)
  const frame = (opcode: number, payload: Buffer, extra: Partial<Parameters<typeof encodeFrame>[0]> = {}) => encodeFrame({ opcode, payload, maskKey: key(), ...extra })
  return r.weighted<() => { bytes: Array<Buffer>; what: string }>([
    [() => ({ bytes: [frame(Opcode.text, text(r, r.int(0, 200)))], what: "text" }), 25],
    [() => ({ bytes: [frame(Opcode.binary, r.bytes(size(r, 70_000)))], what: "binary" }), 20],
    [() => {
      const n = size(r)
      return { bytes: [frame(r.chance(0.5) ? Opcode.binary : Opcode.text, Buffer.alloc(n, 0x61))], what: `${n} B frame` }
    }, 4],
    [() => {
      const parts = r.int(2, 5)
      const out: Array<Buffer> = []
      for (let i = 0; i < parts; i++) {
        out.push(frame(i === 0 ? Opcode.text : Opcode.continuation, text(r, r.int(0, 50)), { fin: i === parts - 1 }))
        if (i < parts - 1 && r.chance(0.3)) out.push(frame(Opcode.ping, text(r, 4)))
      }
      return { bytes: out, what: `message in ${parts} fragments` }
    }, 10],
    [() => ({ bytes: [frame(Opcode.text, text(r, 5), { fin: false }), frame(Opcode.text, text(r, 5))], what: "new message inside a fragmented one" }), 3],
    [() => ({ bytes: [frame(Opcode.continuation, text(r, 5))], what: "continuation without a start" }), 3],
    [() => ({ bytes: [frame(Opcode.ping, r.bytes(r.chance(0.8) ? r.int(0, 125) : r.int(126, 1000)))], what: "ping" }), 8],
    [() => ({ bytes: [frame(Opcode.ping, text(r, 3), { fin: false })], what: "fragmented ping" }), 2],
    [() => ({ bytes: [frame(Opcode.pong, r.bytes(r.int(0, 125)))], what: "unsolicited pong" }), 4],
    [() => {
      const code = r.pick<number | undefined>([undefined, 1000, 1001, 3000, 4999, 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
      const reason = r.weighted<Buffer>([[Buffer.alloc(0), 3], [text(r, r.int(1, 20)), 3], [invalidUtf8(r), 2], [Buffer.alloc(r.int(124, 200), 0x72), 1]])
      const payload = r.chance(0.1) ? Buffer.from([0x03]) : closePayload(code, reason)
      return { bytes: [frame(Opcode.close, payload)], what: `close ${payload.length === 1 ? "with a 1-byte payload" : `code ${code ?? "none"}`}` }
    }, 8],
    [() => ({ bytes: [frame(Opcode.text, invalidUtf8(r))], what: "invalid UTF-8 text" }), 4],
    [() => ({ bytes: [frame(Opcode.text, text(r, 8), { rsv: r.int(1, 7) })], what: "reserved bits" }), 3],
    [() => ({ bytes: [frame(r.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xf]), text(r, 8))], what: "unknown opcode" }), 3],
    [() => ({ bytes: [frame(Opcode.text, text(r, 8), { maskKey: null })], what: "unmasked" }), 3],
    [() => ({ bytes: [frame(Opcode.text, text(r, 8), { lengthForm: r.pick(["16", "64"] as const) })], what: "longer length form than needed" }), 2],
    [() => ({ bytes: [frame(Opcode.binary, text(r, 8), { announcedLength: r.pick<number | bigint>([2n ** 63n, 2n ** 64n - 1n, 2 ** 32, 100_000]) })], what: "length that lies" }), 3],
    [() => ({ bytes: [frame(Opcode.text, Buffer.alloc(0))], what: "empty text" }), 4]
  ])()
}

/** One input of generator 4: an upgraded client WebSocket to `fuzz:h` and a few frames. */
export const clientWsInput = (r: Prng): ((tokens: FuzzTokens) => RawInput) => {
  const inQuery = r.chance(0.3)
  const count = r.int(1, 12)
  const made = Array.from({ length: count }, () => frames(r))
  const finish = r.weighted<RawPlan["finish"]>([["end", 30], ["hold", 50], ["destroy", 20]])
  const holdMs = r.int(200, 1200)
  const gapMs = r.pick([0, 0, 5, 20])
  const nonce = r.int(0, 1e9)
  return (tokens) => {
    const lines = [
      `GET /hosts/fuzz:h/ws/${nonce}${inQuery ? `?token=${tokens.valid}` : ""} HTTP/1.1`,
      "Host: relay",
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13",
      ...(inQuery ? [] : [`Authorization: Bearer ${tokens.valid}`])
    ]
    return {
      note: `client ws: ${made.map((m) => m.what).join(", ")}; ${finish}`,
      plan: {
        parts: [Buffer.from(lines.join("\r\n") + "\r\n\r\n")],
        after: { parts: made.flatMap((m) => m.bytes), when: "101" },
        gapMs,
        finish,
        holdMs,
        owed: finish !== "destroy"
      }
    }
  }
}
