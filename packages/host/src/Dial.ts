/**
 * One connect attempt to `relayUrl`, announcing the optional frames this agent understands, its
 * instance id and which of its sessions dials (the relay replaces that session's previous tunnel,
 * and refuses another session's with 4003). Disconnected, so stopping the agent mid-handshake does not wait for the
 * handshake to end; the inner fiber never fails (it returns its Exit), so the runtime has no
 * unhandled error to report.
 */
import { Features, FeaturesHeader, InstanceHeader, SessionHeader, Transport, TunnelProtocols, WindowHeader, windowsHeader } from "@effect-relay/protocol"
import { Effect, Redacted } from "effect"
import { ConnectError } from "./Errors.js"
import type { ResolvedHostAgentConfig } from "./HostAgentConfig.js"
import { displayUrl, tunnelUrl } from "./TunnelUrl.js"

export const dial = (config: ResolvedHostAgentConfig, instanceId: string, session: number, relayUrl: string) =>
  Effect.disconnect(
    Effect.exit(Transport.connect(tunnelUrl(relayUrl, config.hostId), {
      headers: {
        authorization: `Bearer ${Redacted.value(config.token)}`,
        [FeaturesHeader]: `${Features.cancel},${Features.hello}`,
        [InstanceHeader]: instanceId,
        [SessionHeader]: String(session),
        ...(config.protocolV2 ? { [WindowHeader]: windowsHeader({ stream: config.streamWindowBytes, tunnel: config.tunnelWindowBytes }) } : {})
      },
      // Version 1 first: a relay from before version 2 takes the first offered.
      ...(config.protocolV2 ? { protocols: [TunnelProtocols.v1, TunnelProtocols.v2] } : {}),
      timeoutMs: config.connectTimeoutMs,
      // The tunnel carries whole bodies: no per-byte masking from our own agent (see Transport).
      zeroMask: true
    }))
  ).pipe(
    Effect.flatten,
    // A URL or header `ws` rejects outright is a failed connect, not a crash.
    Effect.catchAllDefect((defect) => Effect.fail(new ConnectError({ url: displayUrl(relayUrl), cause: defect })))
  )
