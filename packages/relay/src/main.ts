/**
 * Entry point of `effect-relay`: parses the command line (every flag falls back to its
 * environment variable, see `config/RelaySettings.ts`), checks the whole configuration before
 * anything is opened, and runs the relay Layer until SIGINT/SIGTERM drains it.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Logging, Setting } from "@effect-relay/protocol"
import { Console, Duration, Effect, Layer, Option, Redacted } from "effect"
import { mintToken } from "./auth/Token.js"
import { describeSeconds } from "./auth/TokenLifetime.js"
import { assertDevModeAllowed, loadOrCreateDevSecret, productionEvidence } from "./config/DevSecret.js"
import {
  authSettingsOf,
  checkRelaySettings,
  checkSecret,
  type ConfigProblem,
  RelayConfig,
  relaySettingsOf,
  type AuthSettings
} from "./config/RelayConfig.js"
import { relaySettings, type RelaySettingValues } from "./config/RelaySettings.js"
import { directoryLayer, relayLayer } from "./Relay.js"

/** Configured auth, or dev mode: a generated secret on disk, refused where production is evident. */
const resolveAuth = (o: RelaySettingValues) =>
  Option.match(authSettingsOf(o), {
    onSome: Effect.succeed,
    onNone: () =>
      Effect.gen(function*() {
        yield* assertDevModeAllowed
        const dev = yield* loadOrCreateDevSecret()
        yield* Effect.logWarning("relay.dev_mode").pipe(
          Effect.annotateLogs({ secretFile: dev.file, created: dev.created, mintToken: "npx effect-relay token --org <ORG>" })
        )
        return { key: { _tag: "Secret", secret: dev.secret }, issuer: o.issuer, audience: o.audience } satisfies AuthSettings
      })
  })

const serve = Command.make("serve", Setting.options(relaySettings), (o) =>
  Effect.gen(function*() {
    const settings = relaySettingsOf(o, yield* resolveAuth(o))
    yield* checkRelaySettings(settings)
    yield* Layer.launch(
      relayLayer({ onDeadline: () => process.exit(1), exitOnSecondSignal: true }).pipe(
        Layer.provideMerge(directoryLayer),
        Layer.provide(RelayConfig.layer(settings))
      )
    ).pipe(
      // Every Layer is released by now (tunnels, server, directory connection): the process exits next.
      Effect.onExit(() => Effect.logInfo("relay.stopped"))
    )
  }).pipe(
    Effect.annotateLogs({ region: o.region, machineId: o.machineId }),
    Effect.provide(Logging.loggerLayer(o.logFormat))
  )).pipe(Command.withDescription("Run a relay. Without auth settings it runs in dev mode with a generated secret."))

const parseTtl = (text: string): Option.Option<Duration.Duration> => {
  const match = /^(\d+)\s*(s|m|h|d)$/.exec(text.trim())
  if (!match) return Option.none()
  const n = Number(match[1])
  const unit = { s: "seconds", m: "minutes", h: "hours", d: "days" }[match[2] as "s" | "m" | "h" | "d"]
  return Option.some(Duration.decode(`${n} ${unit}` as Duration.DurationInput))
}

const token = Command.make("token", {
  orgs: Options.text("org").pipe(Options.repeated, Options.withDescription("Org the token grants; repeat for several.")),
  ttl: Options.text("ttl").pipe(Options.withDefault("1h"), Options.withDescription("Lifetime: 30s, 15m, 1h, 7d (default 1h); at most the maximum token lifetime.")),
  subject: Options.text("sub").pipe(Options.optional, Options.withDescription("Subject claim.")),
  authSecret: relaySettings.authSecret.option,
  maxLifetimeSeconds: relaySettings.maxTokenLifetimeSeconds.option
}, (o) =>
  Effect.gen(function*() {
    if (o.orgs.length === 0) return yield* Effect.fail(new Error("give at least one --org"))
    const ttl = yield* Option.match(parseTtl(o.ttl), {
      onNone: () => Effect.fail(new Error(`--ttl ${o.ttl}: use a number and s, m, h or d`)),
      onSome: Effect.succeed
    })
    if (Duration.toSeconds(ttl) > o.maxLifetimeSeconds) {
      const max = relaySettings.maxTokenLifetimeSeconds
      return yield* Effect.fail(
        new Error(`--ttl ${o.ttl} is over the ${describeSeconds(o.maxLifetimeSeconds)} maximum token lifetime (raise it with ${Setting.howToSet(max)}, on the relays too)`)
      )
    }
    const secret: Redacted.Redacted<string> = Option.isSome(o.authSecret)
      ? o.authSecret.value
      : yield* assertDevModeAllowed.pipe(Effect.zipRight(loadOrCreateDevSecret()), Effect.map((dev) => dev.secret))
    // Refused where the relay would refuse it: a token no relay could verify is no use.
    yield* checkSecret(relaySettings.authSecret, secret, yield* productionEvidence)
    const jwt = yield* mintToken(secret, {
      orgs: o.orgs,
      ttl,
      ...(Option.isSome(o.subject) ? { subject: o.subject.value } : {})
    })
    yield* Console.log(jwt)
  })).pipe(Command.withDescription("Print a token signed with the relay's HS256 secret."))

const root = Command.make("effect-relay").pipe(
  Command.withDescription("effect-relay: a tunnel relay that drains instead of dying."),
  Command.withSubcommands([serve, token])
)

const cli = Command.run(root, { name: "effect-relay", version: "0.1.0" })

/**
 * A configuration that cannot run is one line on stderr and exit 1, before anything was opened
 * (the CLI prints its own line for a flag or variable it cannot read); with LOG_LEVEL=debug, the
 * error's stack follows it.
 */
const reportStartupError = (error: unknown) =>
  Effect.sync(() => {
    if (!ValidationError.isValidationError(error)) {
      const problem = error as Partial<ConfigProblem> & { message?: string; stack?: string }
      process.stderr.write(`effect-relay: ${problem.message ?? String(error)}\n`)
      if (/^(debug|trace|all)$/i.test(process.env.LOG_LEVEL ?? "") && problem.stack !== undefined) process.stderr.write(`${problem.stack}\n`)
    }
    process.exitCode = 1
  })

cli(process.argv).pipe(
  Effect.catchAll(reportStartupError),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
