/**
 * Entry point of `effect-relay-host`: runs the CLI with Node's file system,
 * path and terminal, until SIGINT/SIGTERM.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { run } from "./Cli.js"
import { logLevelConfig } from "@effect-relay/protocol"
import * as Config from "effect/Config"
import * as LogLevel from "effect/LogLevel"

const envLevel = logLevelConfig().pipe(Config.withDefault(LogLevel.Info), Effect.tapError((error) => Console.error(String(error))))

// LOG_LEVEL applies around the CLI so that the built-in `--log-level` flag, applied inside it, wins.
Effect.flatMap(envLevel, (level) => Effect.provide(run(process.argv), Logger.minimumLogLevel(level))).pipe(
  Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)),
  // Flag errors are printed by the CLI itself and the program logs its own failures.
  NodeRuntime.runMain({ disablePrettyLogger: true, disableErrorReporting: true })
)
