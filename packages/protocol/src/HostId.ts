import { Schema } from "effect"

/** One part of a host id: an org id or a host name. */
const part = "[A-Za-z0-9._-]{1,64}"

/**
 * A host's identity on the wire: `{orgId}:{name}`. The org part is what tokens
 * are checked against (`org` / `orgs` claims).
 */
export const HostId = Schema.String.pipe(
  Schema.pattern(new RegExp(`^${part}:${part}$`), {
    message: () => "a hostId is {orgId}:{name}, each part 1-64 of [A-Za-z0-9._-]"
  }),
  Schema.brand("HostId")
)
export type HostId = typeof HostId.Type

export const decodeHostId = Schema.decodeUnknownEither(HostId)

/** The org a host belongs to: the part before the colon. */
export const orgOf = (hostId: HostId): string => hostId.slice(0, hostId.indexOf(":"))
