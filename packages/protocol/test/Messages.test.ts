import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import {
  decodeBytes,
  decodeHostId,
  DrainMessage,
  encodeBytes,
  HostToRelay,
  HostToRelayCodec,
  HttpRequest,
  HttpResponse,
  orgOf,
  Ping,
  Pong,
  RelayToHost,
  RelayToHostCodec,
  WsClose,
  WsFrame,
  WsOpen
} from "../src/index.js"

describe("wire codecs", () => {
  it("encoding renames the tag and is what the schema's own encoder gives, for every message type", () => {
    const relayToHost = [
      HttpRequest.make({ id: "1", method: "POST", path: "/p?q=1", headers: { a: "b", "set-cookie": ["x", "y"] }, body: "AAE=", bodyEncoding: "base64" }),
      WsOpen.make({ id: "c1", path: "/ws", query: "a=1", headers: { origin: "o" } }),
      WsFrame.make({ id: "c1", data: "hi" }),
      WsClose.make({ id: "c1", code: 1000, reason: "bye" }),
      Ping.make({ ts: 42 }),
      DrainMessage.make({ reason: "deploy" }),
      DrainMessage.make({})
    ]
    for (const message of relayToHost) {
      const { _tag, ...fields } = Schema.encodeSync(RelayToHost)(message) as Record<string, unknown>
      expect(JSON.parse(RelayToHostCodec.encode(message)), message._tag).toEqual({ type: _tag, ...fields })
      expect(Either.getOrThrow(RelayToHostCodec.decode(RelayToHostCodec.encode(message)))).toEqual(message)
    }
    const hostToRelay = [
      HttpResponse.make({ id: "1", status: 204, headers: {} }),
      HttpResponse.make({ id: "2", status: 200, headers: { "content-type": "text/plain" }, body: "ok" }),
      WsFrame.make({ id: "c1", data: "AA==", encoding: "base64" }),
      WsClose.make({ id: "c1" }),
      Pong.make({ ts: 7 })
    ]
    for (const message of hostToRelay) {
      const { _tag, ...fields } = Schema.encodeSync(HostToRelay)(message) as Record<string, unknown>
      expect(JSON.parse(HostToRelayCodec.encode(message)), message._tag).toEqual({ type: _tag, ...fields })
      expect(Either.getOrThrow(HostToRelayCodec.decode(HostToRelayCodec.encode(message)))).toEqual(message)
    }
  })

  it("encodes with `type` on the wire and decodes back", () => {
    const request = HttpRequest.make({ id: "1", method: "GET", path: "/a?b=1", headers: { "set-cookie": ["a", "b"] } })
    const text = RelayToHostCodec.encode(request)
    expect(JSON.parse(text)).toEqual({ type: "http", id: "1", method: "GET", path: "/a?b=1", headers: { "set-cookie": ["a", "b"] } })
    expect(Either.getOrThrow(RelayToHostCodec.decode(text))).toEqual(request)
  })

  it("decodes every message type of each direction", () => {
    for (const frame of [
      { type: "ws:open", id: "c1", path: "/ws", query: "x=1" },
      { type: "ws:frame", id: "c1", data: "AA==", encoding: "base64" },
      { type: "ws:close", id: "c1", code: 1000 },
      { type: "ping", ts: 1 },
      { type: "drain" },
      { type: "drain", reason: "deploy" }
    ]) expect(Either.isRight(RelayToHostCodec.decode(JSON.stringify(frame))), frame.type).toBe(true)
    for (const frame of [
      { type: "http:response", id: "1", status: 200, headers: {} },
      { type: "ws:frame", id: "c1", data: "hi" },
      { type: "ws:close", id: "c1" },
      { type: "pong", ts: 1 }
    ]) expect(Either.isRight(HostToRelayCodec.decode(JSON.stringify(frame))), frame.type).toBe(true)
  })

  it("rejects bad frames with a described FrameError", () => {
    const cases: Array<[string, string]> = [
      ["nope", "not a JSON object"],
      ["{nope", "not JSON"],
      ["[]", "not a JSON object"],
      ["{}", "no type field"],
      [JSON.stringify({ type: "teleport" }), "teleport"],
      [JSON.stringify({ type: "http:response", id: "1", status: "200", headers: {} }), "status"],
      [JSON.stringify({ type: "http:response", id: "1", status: 200, headers: { a: 1 } }), "headers"],
      [JSON.stringify({ type: "http", id: "1", method: "GET", path: "/", headers: {} }), "http"],
      // Unknown types are told without the union's error, and what came from the peer is cut.
      [JSON.stringify({ type: "t".repeat(100_000) }), "unknown type"]
    ]
    for (const [text, mention] of cases) {
      const result = HostToRelayCodec.decode(text)
      expect(Either.isLeft(result), text).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left.message).toContain(mention)
        expect(result.left.message.length).toBeLessThan(500)
      }
    }
    // A value nested thousands deep is told without walking it.
    const deep = HostToRelayCodec.decode(`{"type":"http:response","id":"3","status":200,"headers":{},"body":${"[".repeat(50_000)}${"]".repeat(50_000)}}`)
    expect(Either.isLeft(deep) && deep.left.id).toBe("3")
    expect(Either.isLeft(deep) && deep.left.problem).toBe("invalid body (wrong type)")
    const tooLong = HostToRelayCodec.decode(JSON.stringify({ type: "http:response", id: "7", status: "x".repeat(1_000_000), headers: {} }))
    expect(Either.isLeft(tooLong) && tooLong.left.id).toBe("7")
    expect(Either.isLeft(tooLong) && tooLong.left.problem.length).toBeLessThanOrEqual(350)
  })

  it("relay->host and host->relay unions are distinct", () => {
    expect(Either.isLeft(RelayToHostCodec.decode(JSON.stringify({ type: "pong", ts: 1 })))).toBe(true)
    expect(Either.isRight(HostToRelayCodec.decode(HostToRelayCodec.encode(WsFrame.make({ id: "c", data: "x" }))))).toBe(true)
    expect(() => HttpResponse.make({ id: "1", status: 99, headers: {} })).toThrow()
  })
})

describe("bodies", () => {
  it("valid UTF-8 travels as text, anything else as base64, and both round-trip byte for byte", () => {
    const text = new TextEncoder().encode("héllo \uFEFF wörld")
    expect(encodeBytes(text).bodyEncoding).toBeUndefined()
    const binary = new Uint8Array(256).map((_, i) => i)
    const encoded = encodeBytes(binary)
    expect(encoded.bodyEncoding).toBe("base64")
    // Over 64 KiB even text goes base64 (no per-byte checks), and still round-trips.
    const large = new TextEncoder().encode("a".repeat(64 * 1024 + 1))
    expect(encodeBytes(large).bodyEncoding).toBe("base64")
    expect(encodeBytes(large.subarray(1)).bodyEncoding).toBeUndefined()
    for (const bytes of [text, binary, new Uint8Array([0xef, 0xbb, 0xbf, 0x41]), large]) {
      const e = encodeBytes(bytes)
      expect([...decodeBytes(e.body, e.bodyEncoding)]).toEqual([...bytes])
    }
  })
})

describe("HostId", () => {
  it("accepts {org}:{name} and rejects the rest", () => {
    for (const ok of ["acme:laptop", "a.b-c_d:E.1", `${"a".repeat(64)}:${"b".repeat(64)}`]) {
      expect(Either.isRight(decodeHostId(ok)), ok).toBe(true)
    }
    for (const bad of ["", "acme", "acme:", ":x", "a:b:c", "a b:c", `${"a".repeat(65)}:b`, "acme:lap/top"]) {
      expect(Either.isLeft(decodeHostId(bad)), bad).toBe(true)
    }
    expect(orgOf(Either.getOrThrow(decodeHostId("acme:laptop")))).toBe("acme")
  })
})

describe("frame size and close reasons", () => {
  it("text that JSON would blow up (NULs) travels as base64; ordinary text as text", async () => {
    const { truncateReason, redact } = await import("../src/Transport.js")
    const nuls = new Uint8Array(3000)
    const encoded = encodeBytes(nuls)
    expect(encoded.bodyEncoding).toBe("base64")
    expect(JSON.stringify(encoded.body).length).toBeLessThanOrEqual(Math.ceil(3000 / 3) * 4 + 2)
    expect(encodeBytes(new TextEncoder().encode("plain text, with \"some\" quotes\n")).bodyEncoding).toBeUndefined()
    const reason = truncateReason("é".repeat(100))
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123)
    expect(reason).not.toContain("\uFFFD")
    expect(reason).toBe("é".repeat(61))
    expect(redact("wss://user:pass@relay.example/tunnel?hostId=a:b&token=abc")).toBe("wss://<redacted>@relay.example/tunnel?hostId=a:b&token=<redacted>")
  })
})
