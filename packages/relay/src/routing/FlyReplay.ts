/**
 * Routing mode `fly-replay`: instead of proxying a request to the relay that holds its host,
 * this relay answers with a `fly-replay` header and Fly's proxy sends the request there.
 */
import type { IncomingMessage } from "node:http"
import type { Route } from "./Router.js"

/** Where Fly should replay to: the owner machine in this region, else the owner's region. */
export const replayHeader = (target: Extract<Route, { _tag: "Remote" }>, ownRegion: string): string =>
  target.region === ownRegion ? `instance=${target.machineId}` : `region=${target.region}`

/** Fly cannot replay a request whose body is over 1 MB (or of unknown length): those are proxied. */
export const replayable = (req: IncomingMessage): boolean =>
  req.headers["transfer-encoding"] === undefined && Number(req.headers["content-length"] ?? "0") <= 1_000_000
