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
  TunnelClosed,
  WatchdogTimeout
} from "./Errors.js"
export { HostAgent, HostAgentLive, TunnelState } from "./HostAgent.js"
export {
  type HostAgentConfig,
  HostAgentConfigDefaults,
  hostAgentConfigFromEnv,
  HostAgentEnv,
  resolveHostAgentConfig,
  type ResolvedHostAgentConfig
} from "./HostAgentConfig.js"
export { type LogFormat, logFormatLayer, LoggingEnv } from "./Logging.js"
export { reconnectsFor, reconnectsTotal, tunnelConnected } from "./Metrics.js"
export {
  MetricsServer,
  MetricsServerDefaults,
  MetricsServerEnv,
  MetricsServerError,
  MetricsServerLive,
  type MetricsServerOptions
} from "./MetricsServer.js"
export { reconnectLoop, reconnectLoopWithoutDrainReset } from "./ReconnectLoop.js"
