/**
 * One definition per setting: its CLI flag, its environment variable, its default and what it
 * does. The CLI options (with `--help`), the `Config` read from the environment, the defaults a
 * program or a test starts from, and the README's table all come from that definition, so a
 * setting is written down once. The relay and the host agent both build their settings here.
 */
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as HelpDoc from "@effect/cli/HelpDoc"
import { Config, ConfigError, ConfigProvider, Effect, Either, Option, Redacted } from "effect"

export interface Setting<A> {
  /** The CLI flag, without the dashes. */
  readonly flag: string
  /** The environment variable the flag falls back to. */
  readonly env: string
  /** More variables read, in order, when `env` is not set (`FLY_REGION` after `REGION`). */
  readonly alsoEnv: ReadonlyArray<string>
  readonly description: string
  /** The default as people read it in `--help` and the README ("8080", "the hostname", "none"). */
  readonly defaultText: string
  /** The value from the environment (then the default), checked. */
  readonly config: Config.Config<A>
  /** The CLI flag, falling back to `config`. */
  readonly option: Options.Options<A>
}

/** A check on a value: its message says what a valid value is. */
export interface Check<A> {
  readonly message: string
  readonly validation: (a: A) => boolean
}

export const Checks = {
  positiveInt: { message: "must be a positive integer", validation: (n: number) => Number.isInteger(n) && n > 0 },
  nonNegativeInt: { message: "must be an integer >= 0", validation: (n: number) => Number.isInteger(n) && n >= 0 },
  port: { message: "must be a port, 0-65535", validation: (n: number) => Number.isInteger(n) && n >= 0 && n <= 65535 },
  fraction: { message: "must be between 0 and 1", validation: (n: number) => n >= 0 && n <= 1 },
  /** A flow-control window: 1 KiB to 1 GiB. */
  windowBytes: { message: "must be an integer from 1024 to 1073741824", validation: (n: number) => Number.isInteger(n) && n >= 1024 && n <= 1024 ** 3 }
} satisfies Record<string, Check<number>>

interface Common {
  readonly flag: string
  readonly env: string
  readonly alsoEnv?: ReadonlyArray<string>
  readonly description: string
}

/** How to set a setting, for error messages: `--port or PORT`. */
export const howToSet = (s: Pick<Setting<unknown>, "flag" | "env">): string => `--${s.flag} or ${s.env}`

const invalid = (common: Common, message: string) => ConfigError.InvalidData([], `${message} (set ${howToSet(common)})`)

/** Reads a string from `env`, then from each of `alsoEnv`. */
const rawString = (common: Common): Config.Config<string> =>
  (common.alsoEnv ?? []).reduce(
    (config, name) => Config.orElse(config, () => Config.string(name)),
    Config.string(common.env)
  )

const checked = <A>(config: Config.Config<A>, common: Common, check: Check<A> | undefined) =>
  check === undefined
    ? config
    : Config.mapOrFail(config, (a) => (check.validation(a) ? Either.right(a) : Either.left(invalid(common, `${common.env} ${check.message}`))))

const optionChecked = <A>(option: Options.Options<A>, common: Common, check: Check<A> | undefined) =>
  check === undefined
    ? option
    : Options.filterMap(option, (a) => (check.validation(a) ? Option.some(a) : Option.none()), `--${common.flag} ${check.message}`)

const parsed = <A>(common: Common, what: string, parse: (text: string) => A | undefined): Config.Config<A> =>
  Config.mapOrFail(rawString(common), (text) => {
    const value = parse(text.trim())
    return value === undefined ? Either.left(invalid(common, `${common.env} must be ${what}, got ${JSON.stringify(text)}`)) : Either.right(value)
  })

const withHelp = <A>(option: Options.Options<A>, common: Common, defaultText: string) =>
  Options.withDescription(
    option,
    `${common.description} Default: ${defaultText}. Env: ${[common.env, ...(common.alsoEnv ?? [])].join(", then ")}.`
  )

const make = <A>(
  common: Common,
  defaultText: string,
  config: Config.Config<A>,
  flagOption: Options.Options<A>
): Setting<A> => ({
  flag: common.flag,
  env: common.env,
  alsoEnv: common.alsoEnv ?? [],
  description: common.description,
  defaultText,
  config,
  option: withHelp(Options.withFallbackConfig(flagOption, config), common, defaultText)
})

const intText = (text: string) => (/^-?\d+$/.test(text) ? Number(text) : undefined)
const numberText = (text: string) => (text !== "" && Number.isFinite(Number(text)) ? Number(text) : undefined)

/** An integer with a default. */
export const integer = (o: Common & { readonly default: number; readonly check?: Check<number>; readonly defaultText?: string }) => {
  const check = o.check ?? Checks.positiveInt
  return make(
    o,
    o.defaultText ?? String(o.default),
    checked(parsed(o, "an integer", intText), o, check).pipe(Config.withDefault(o.default)),
    optionChecked(Options.integer(o.flag), o, check)
  )
}

/** A number (fractions allowed) with a default. */
export const number = (o: Common & { readonly default: number; readonly check?: Check<number> }) =>
  make(
    o,
    String(o.default),
    checked(parsed(o, "a number", numberText), o, o.check).pipe(Config.withDefault(o.default)),
    optionChecked(Options.float(o.flag), o, o.check)
  )

/** A string with a default: a fixed one, or one worked out when it is read (`defaultText` says how). */
export const text = (o: Common & {
  readonly default: string | (() => string)
  readonly defaultText?: string
  readonly check?: Check<string>
}) => {
  const fallback = typeof o.default === "string" ? Config.succeed(o.default) : Config.sync(o.default)
  return make(
    o,
    o.defaultText ?? (typeof o.default === "string" ? JSON.stringify(o.default) : "computed"),
    Config.orElseIf(checked(rawString(o), o, o.check), { if: ConfigError.isMissingDataOnly, orElse: () => fallback }),
    optionChecked(Options.text(o.flag), o, o.check)
  )
}

/** A string that may be absent. */
export const optionalText = (o: Common & { readonly check?: Check<string> }) =>
  make(
    o,
    "none",
    Config.option(checked(rawString(o), o, o.check)),
    Options.optional(optionChecked(Options.text(o.flag), o, o.check))
  )

/** A secret that may be absent: never shown, never logged. */
export const optionalSecret = (o: Common) =>
  make(
    o,
    "none",
    Config.option(Config.map(rawString(o), Redacted.make)),
    Options.optional(Options.redacted(o.flag))
  )

/** A secret that must be given. */
export const secret = (o: Common) =>
  make(o, "required", Config.map(rawString(o), Redacted.make), Options.redacted(o.flag))

/** A string that must be given. */
export const requiredText = (o: Common & { readonly check?: Check<string> }) =>
  make(o, "required", checked(rawString(o), o, o.check), optionChecked(Options.text(o.flag), o, o.check))

/** One of a few words; the default may be worked out from the environment (`defaultText` says how). */
export const choice = <const C extends ReadonlyArray<string>>(o: Common & {
  readonly choices: C
  readonly default: C[number] | Config.Config<C[number]>
  readonly defaultText?: string
}) => {
  const choices = o.choices as ReadonlyArray<C[number]>
  const fallback: Config.Config<C[number]> = typeof o.default === "string" ? Config.succeed(o.default) : o.default
  const chosen = parsed(o, `one of ${choices.join(", ")}`, (t) => (choices.includes(t) ? t as C[number] : undefined))
  return make(
    o,
    o.defaultText ?? (typeof o.default === "string" ? o.default : "computed"),
    Config.orElseIf(chosen, { if: ConfigError.isMissingDataOnly, orElse: () => fallback }),
    Options.choice(o.flag, choices as unknown as readonly [C[number], ...Array<C[number]>])
  )
}

/** A switch: `--flag` / `--no-flag`, env `true`/`false`. */
export const boolean = (o: Common & { readonly default: boolean }) =>
  make(
    o,
    String(o.default),
    Config.boolean(o.env).pipe(Config.withDefault(o.default)),
    Options.boolean(o.flag, { negationNames: [`no-${o.flag}`] })
  )

/** An integer that may be absent (a port to serve metrics on, say). */
export const optionalInteger = (o: Common & { readonly check?: Check<number> }) =>
  make(
    o,
    "none",
    Config.option(checked(parsed(o, "an integer", intText), o, o.check)),
    Options.optional(optionChecked(Options.integer(o.flag), o, o.check))
  )

/**
 * A list: the flag repeated, else the variable comma-separated; items trimmed, empty ones dropped.
 * At least one item is required.
 */
export const list = (o: Common & { readonly check?: Check<string> }) => {
  const split = (items: ReadonlyArray<string>) => items.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v.length > 0)
  const valid = (items: ReadonlyArray<string>) => items.length > 0 && (o.check === undefined || items.every(o.check.validation))
  const what = o.check?.message ?? "must not be empty"
  const config: Config.Config<ReadonlyArray<string>> = Config.mapOrFail(rawString(o), (text) => {
    const items = split([text])
    return valid(items) ? Either.right(items) : Either.left(invalid(o, `${o.env} ${what}`))
  })
  // A repeated flag has no "missing" state to fall back from: an empty list reads the variable.
  const option = Options.text(o.flag).pipe(
    Options.repeated,
    Options.mapEffect((given) => {
      if (given.length === 0) {
        return Effect.mapError(config, (e) => ValidationError.invalidValue(HelpDoc.p(`--${o.flag} (or ${o.env}) is required: ${String(e)}`)))
      }
      const items = split(given)
      return valid(items)
        ? Effect.succeed(items as ReadonlyArray<string>)
        : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${o.flag} ${what}`)))
    })
  )
  return {
    flag: o.flag,
    env: o.env,
    alsoEnv: o.alsoEnv ?? [],
    description: o.description,
    defaultText: "required",
    config,
    option: withHelp(option, o, "required")
  } satisfies Setting<ReadonlyArray<string>>
}

// ---- sets of settings -----------------------------------------------------------------------

export type Settings = Record<string, Setting<any>>
export type ValuesOf<S extends Settings> = { readonly [K in keyof S]: S[K] extends Setting<infer A> ? A : never }

/** Every setting as CLI options, keyed like the settings (for `Command.make`). */
export const options = <S extends Settings>(settings: S): { readonly [K in keyof S]: S[K]["option"] } =>
  Object.fromEntries(Object.entries(settings).map(([key, s]) => [key, s.option])) as never

/** Every setting read from the environment. */
export const config = <S extends Settings>(settings: S): Config.Config<ValuesOf<S>> =>
  Config.all(Object.fromEntries(Object.entries(settings).map(([key, s]) => [key, s.config]))) as never

/**
 * The values every setting takes when nothing is set (settings without a default are left out):
 * what an embedding program or a test starts from.
 */
export const defaults = <S extends Settings>(settings: S): Partial<ValuesOf<S>> => {
  const empty = ConfigProvider.fromMap(new Map())
  const out: Record<string, unknown> = {}
  for (const [key, s] of Object.entries(settings)) {
    const value = Effect.runSync(Effect.either(Effect.withConfigProvider(s.config, empty)))
    if (Either.isRight(value)) out[key] = value.right
  }
  return out as never
}

/** The README's table of settings: flag, variable, default, what it does. */
export const markdownTable = (settings: Settings): string => {
  const rows = Object.values(settings).map((s) =>
    `| \`--${s.flag}\` | \`${[s.env, ...s.alsoEnv].join("`, `")}\` | ${s.defaultText} | ${s.description.replace(/\|/g, "\\|")} |`
  )
  return ["| flag | env | default | what it does |", "|---|---|---|---|", ...rows].join("\n")
}
