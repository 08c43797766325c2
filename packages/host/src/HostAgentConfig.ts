/**
 * The host agent's configuration as a program gives it to `HostAgentLive`: the four things it
 * must know (relay, host id, token, target) and any setting to change from its default. Every
 * setting, with its default and meaning, is defined once in `HostSettings.ts`.
 */
import { Setting } from "@effect-relay/protocol"
import { type Config, Redacted } from "effect"
import { hostAgentSettings, type HostAgentSettingValues } from "./HostSettings.js"

/** A config with every default filled in. */
export type ResolvedHostAgentConfig = HostAgentSettingValues

type Required = "relayUrls" | "token" | "hostId" | "targetUrl"

export interface HostAgentConfig extends Partial<Omit<ResolvedHostAgentConfig, Required>> {
  /**
   * The relay's base URL (ws://, wss://, http:// or https://); the tunnel is at `/tunnel` under it.
   * Several (an array, or comma-separated): the agent's tunnels take different ones (see
   * `RelayChoice`); one URL in front of several relays works too (the relays say who they are).
   */
  readonly relayUrl: string | ReadonlyArray<string>
  /** `{orgId}:{name}`. */
  readonly hostId: string
  /** Bearer token for the relay; sent as `Authorization: Bearer ...`, never logged. */
  readonly token: string | Redacted.Redacted<string>
  /** The local service requests are forwarded to (http:// or https://). */
  readonly targetUrl: string
}

/** Every setting's default (the four required ones have none). */
export const HostAgentConfigDefaults = Setting.defaults(hostAgentSettings) as Omit<ResolvedHostAgentConfig, Required>

export const resolveHostAgentConfig = (config: HostAgentConfig): ResolvedHostAgentConfig => {
  const { relayUrl, token, ...rest } = config
  const given = Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined))
  return {
    ...HostAgentConfigDefaults,
    ...given,
    hostId: config.hostId,
    targetUrl: config.targetUrl,
    relayUrls: splitRelayUrls(relayUrl),
    token: Redacted.isRedacted(token) ? token : Redacted.make(token)
  }
}

/** Relay URLs from an array and/or comma-separated strings, trimmed, empty ones dropped. */
export const splitRelayUrls = (value: string | ReadonlyArray<string>): ReadonlyArray<string> =>
  (typeof value === "string" ? [value] : value).flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v.length > 0)

/** The whole config from the environment, checked, defaults filled in. */
export const hostAgentConfigFromEnv: Config.Config<ResolvedHostAgentConfig> = Setting.config(hostAgentSettings)
