export * as Backoff from "./Backoff.js"
export {
  ConnectError,
  DrainSignal,
  InvalidRequest,
  reasonOf,
  type ReconnectReason,
  reconnectReasons,
  ResponseTooLarge,
  type SessionEnd,
  type TargetError,
  targetErrorStatus,
  TargetResponseFailed,
  TargetTimeout,
  TargetUnreachable,
  SessionClosed,
  WatchdogTimeout
} from "./Errors.js"
export { HostAgent, HostAgentLive, TunnelState } from "./HostAgent.js"
export {
  type HostAgentConfig,
  HostAgentConfigDefaults,
  hostAgentConfigFromEnv,
  resolveHostAgentConfig,
  type ResolvedHostAgentConfig
} from "./HostAgentConfig.js"
export { hostAgentSettings, hostProcessSettings } from "./HostSettings.js"
export { reconnectsFor, reconnectsTotal, tunnelConnected } from "./Metrics.js"
export {
  MetricsServer,
  MetricsServerError,
  MetricsServerLive,
  type MetricsServerOptions
} from "./MetricsServer.js"
export { reconnectLoop, reconnectLoopWithoutDrainReset } from "./ReconnectLoop.js"
