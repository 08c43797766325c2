export * as Backoff from "./Backoff.js"
export {
  ConnectError,
  DrainSignal,
  InvalidRequest,
  reasonOf,
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
export { reconnectsTotal, tunnelConnected } from "./Metrics.js"
export { reconnectLoop, reconnectLoopWithoutDrainReset } from "./ReconnectLoop.js"
