/**
 * One connect attempt to `relayUrl`, announcing the optional frames this agent understands and
 * its instance id. Disconnected, so stopping the agent mid-handshake does not wait for the
 * handshake to end; the inner fiber never fails (it returns its Exit), so the runtime has no
 * unhandled error to report.
 */
import { Features, FeaturesHeader, InstanceHeader, Transport } from "@effect-relay/protocol"
import { Effect, Redacted } from "effect"
import { ConnectError } from "./Errors.js"
import type { ResolvedHostAgentConfig } from "./HostAgentConfig.js"
import { displayUrl, tunnelUrl } from "./TunnelUrl.js"

export const dial = (config: ResolvedHostAgentConfig, instanceId: string, relayUrl: string) =>
  Effect.disconnect(
    Effect.exit(Transport.connect(tunnelUrl(relayUrl, config.hostId), {
      headers: {
        authorization: `Bearer ${Redacted.value(config.token)}`,
        [FeaturesHeader]: `${Features.cancel},${Features.hello}`,
        [InstanceHeader]: instanceId
      },
      timeoutMs: config.connectTimeoutMs,
      // The tunnel carries whole bodies: no per-byte masking from our own agent (see Transport).
      zeroMask: true
    }))
  ).pipe(
    Effect.flatten,
    // A URL or header `ws` rejects outright is a failed connect, not a crash.
    Effect.catchAllDefect((defect) => Effect.fail(new ConnectError({ url: displayUrl(relayUrl), cause: defect })))
  )
