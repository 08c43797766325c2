export * as Backoff from "./Backoff.js"
export {
  ConnectError,
  Drained,
  DrainSignal,
  HeldHere,
  InvalidRequest,
  reasonOf,
  type ReconnectReason,
  reconnectReasons,
  RelayBusy,
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
export { HostAgent, HostAgentLive, SessionState, TunnelState } from "./HostAgent.js"
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
export * as Pacing from "./Pacing.js"
export { Pace, type PacedLoopOptions, pacedReconnectLoop, reconnectLoop, reconnectLoopWithoutDrainReset } from "./ReconnectLoop.js"
export { chooseRelay, type RelayChoiceInput } from "./RelayChoice.js"
