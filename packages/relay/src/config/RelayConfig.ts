/**
 * The relay's configuration as a service, so every part reads the same values. The settings
 * themselves are defined once in `RelaySettings.ts`; this file turns their values into the
 * relay's configuration (auth resolved) and checks what no single setting can check alone.
 */
import { Setting } from "@effect-relay/protocol"
import { Context, Data, Effect, Layer, Option, Redacted } from "effect"
import { productionEvidence } from "./DevSecret.js"
import { relaySettings, type RelaySettingValues, type Routing } from "./RelaySettings.js"

export type { Routing }

/** How this relay verifies tokens: a shared HS256 secret or a JWKS endpoint; issuer and audience checked when set. */
export interface AuthSettings {
  readonly key:
    | { readonly _tag: "Secret"; readonly secret: Redacted.Redacted<string> }
    | { readonly _tag: "Jwks"; readonly url: string }
  readonly issuer: Option.Option<string>
  readonly audience: Option.Option<string>
}

type AuthFields = "authSecret" | "jwksUrl" | "issuer" | "audience" | "logFormat"

/** The relay's configuration: every setting's value, with the four auth settings resolved into `auth`. */
export interface RelaySettings extends Omit<RelaySettingValues, AuthFields> {
  readonly auth: AuthSettings
}

export class RelayConfig extends Context.Tag("effect-relay/RelayConfig")<RelayConfig, RelaySettings>() {
  static layer = (settings: RelaySettings) => Layer.succeed(RelayConfig, settings)
  /**
   * Every setting from the environment, for a program that embeds the relay. Auth must be
   * configured (dev mode is the CLI's); a problem fails the Layer with a `ConfigProblem`.
   */
  static layerFromEnv = Layer.effect(
    RelayConfig,
    Effect.gen(function*() {
      const values = yield* Setting.config(relaySettings)
      const auth = authSettingsOf(values)
      if (Option.isNone(auth)) {
        return yield* new ConfigProblem({ setting: "RELAY_AUTH_SECRET", message: "no auth configured: set RELAY_AUTH_SECRET or RELAY_AUTH_JWKS_URL" })
      }
      const settings = relaySettingsOf(values, auth.value)
      yield* checkRelaySettings(settings)
      return settings
    })
  )
}

/** A configuration that cannot run, said in one line that names the setting and how to set it. */
export class ConfigProblem extends Data.TaggedError("ConfigProblem")<{ readonly setting: string; readonly message: string }> {}

/** The relay's configuration from the settings' values and the auth it runs with. */
export const relaySettingsOf = (values: RelaySettingValues, auth: AuthSettings): RelaySettings => {
  const { authSecret: _s, jwksUrl: _j, issuer: _i, audience: _a, logFormat: _l, ...rest } = values
  return { ...rest, auth }
}

/** Checks across settings, run before anything is opened (the directory, the port). */
export const checkRelaySettings = (settings: RelaySettings): Effect.Effect<void, ConfigProblem> =>
  Effect.gen(function*() {
    if (Option.isSome(settings.redisUrl) && Option.isNone(settings.peerSecret)) {
      const s = relaySettings.peerSecret
      return yield* new ConfigProblem({
        setting: s.env,
        message: `${s.env} is required with REDIS_URL: relays proxy to each other and must prove it (set the same secret on every relay with ${Setting.howToSet(s)})`
      })
    }
    if (settings.tunnelBodyBudgetBytes < settings.maxBodyBytes || settings.bodyBudgetBytes < settings.tunnelBodyBudgetBytes) {
      return yield* new ConfigProblem({
        setting: relaySettings.tunnelBodyBudgetBytes.env,
        message: `the body budgets must hold a largest body: MAX_BODY_BYTES (${settings.maxBodyBytes}) <= ` +
          `TUNNEL_BODY_BUDGET_BYTES (${settings.tunnelBodyBudgetBytes}) <= BODY_BUDGET_BYTES (${settings.bodyBudgetBytes})`
      })
    }
    if (Option.isSome(settings.publicDomain) && settings.auth.key._tag === "Jwks" && Option.isNone(settings.sessionSecret)) {
      const s = relaySettings.sessionSecret
      return yield* new ConfigProblem({
        setting: s.env,
        message: `${s.env} is required with RELAY_AUTH_JWKS_URL and PUBLIC_DOMAIN: the relay signs browser sessions itself and ` +
          `has no secret of its own to derive their key from (set a random secret of at least ${minSecretBytes} bytes, the same on every relay, with ${Setting.howToSet(s)})`
      })
    }
    const production = yield* productionEvidence
    const secrets: Array<readonly [Pick<Setting.Setting<unknown>, "flag" | "env">, Redacted.Redacted<string>]> = []
    if (settings.auth.key._tag === "Secret") secrets.push([relaySettings.authSecret, settings.auth.key.secret])
    if (Option.isSome(settings.peerSecret)) secrets.push([relaySettings.peerSecret, settings.peerSecret.value])
    if (Option.isSome(settings.sessionSecret)) secrets.push([relaySettings.sessionSecret, settings.sessionSecret.value])
    for (const [setting, secret] of secrets) {
      const bytes = yield* checkSecret(setting, secret, production)
      if (bytes < minSecretBytes) {
        yield* Effect.logWarning("relay.weak_secret").pipe(Effect.annotateLogs({
          setting: setting.env,
          bytes,
          minimumBytes: minSecretBytes,
          hint: "refused when NODE_ENV=production or FLY_APP_NAME is set"
        }))
      }
    }
  })

/** The shortest secret a production relay accepts, in bytes: an HS256 key as long as its hash (RFC 7518 section 3.2). */
export const minSecretBytes = 32

/**
 * A secret's length in bytes, refused when empty (no token could verify; any peer would match),
 * and when under `minSecretBytes` in production (`production` says why it looks like it). A
 * short secret on a laptop passes: the caller may warn.
 */
export const checkSecret = (
  setting: Pick<Setting.Setting<unknown>, "flag" | "env">,
  secret: Redacted.Redacted<string>,
  production: Option.Option<string>
): Effect.Effect<number, ConfigProblem> => {
  const value = Redacted.value(secret)
  const bytes = Buffer.byteLength(value, "utf8")
  const fix = `set a random secret of at least ${minSecretBytes} bytes with ${Setting.howToSet(setting)} (openssl rand -hex 32 makes one)`
  if (value.trim() === "") return Effect.fail(new ConfigProblem({ setting: setting.env, message: `${setting.env} is empty: ${fix}` }))
  if (bytes >= minSecretBytes || Option.isNone(production)) return Effect.succeed(bytes)
  return Effect.fail(new ConfigProblem({
    setting: setting.env,
    message: `${setting.env} is ${bytes} bytes, under the ${minSecretBytes} required in production (${production.value}): ${fix}`
  }))
}

/** The defaults of every setting (auth aside): what an embedding program or a test starts from. */
export const defaultRelaySettings = (auth: AuthSettings): RelaySettings =>
  relaySettingsOf(Setting.defaults(relaySettings) as RelaySettingValues, auth)

/** The URL other relays use to reach this one, once its port is known. */
export const internalUrlFor = (configured: Option.Option<string>, port: number): string =>
  Option.getOrElse(configured, () => {
    const ip = process.env.FLY_PRIVATE_IP
    if (ip === undefined || ip === "") return `http://127.0.0.1:${port}`
    return ip.includes(":") ? `http://[${ip}]:${port}` : `http://${ip}:${port}`
  })

/** Which auth applies: a JWKS URL wins over a secret; neither means dev mode (decided by `serve`). */
export const authSettingsOf = (given: Pick<RelaySettingValues, "jwksUrl" | "authSecret" | "issuer" | "audience">): Option.Option<AuthSettings> => {
  const key: Option.Option<AuthSettings["key"]> = Option.isSome(given.jwksUrl)
    ? Option.some({ _tag: "Jwks", url: given.jwksUrl.value })
    : Option.map(given.authSecret, (secret) => ({ _tag: "Secret", secret }))
  return Option.map(key, (key): AuthSettings => ({ key, issuer: given.issuer, audience: given.audience }))
}
