import { Config, Data, Effect, Option, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

/** Where dev mode keeps its generated HS256 secret (git-ignored). */
export const devSecretPath = (cwd: string = process.cwd()) => path.join(cwd, ".effect-relay", "dev-secret")

export class DevModeRefused extends Data.TaggedError("DevModeRefused")<{ readonly why: string }> {
  get message() {
    return `refusing to run without auth configuration (${this.why}): set RELAY_AUTH_SECRET or RELAY_AUTH_JWKS_URL`
  }
}

/**
 * Why this looks like production (`NODE_ENV=production`, or `FLY_APP_NAME` set on Fly), or none
 * on a laptop. Production refuses dev mode and weak secrets. Read through `Config`, so a test can
 * give its own environment.
 */
export const productionEvidence: Effect.Effect<Option.Option<string>> = Config.all({
  nodeEnv: Config.option(Config.string("NODE_ENV")),
  flyApp: Config.option(Config.string("FLY_APP_NAME"))
}).pipe(
  Effect.map(({ flyApp, nodeEnv }) => {
    if (Option.contains(nodeEnv, "production")) return Option.some("NODE_ENV=production")
    if (Option.exists(flyApp, (name) => name !== "")) return Option.some("FLY_APP_NAME is set")
    return Option.none()
  }),
  Effect.orDie
)

/** Dev mode is for laptops: a production-looking environment must configure auth explicitly. */
export const assertDevModeAllowed = Effect.flatMap(productionEvidence, Option.match({
  onNone: () => Effect.void,
  onSome: (why) => Effect.fail(new DevModeRefused({ why }))
}))

/** Reads the dev secret, creating it (mode 0600) on first use. */
export const loadOrCreateDevSecret = (file: string = devSecretPath()) =>
  Effect.try({
    try: () => {
      if (fs.existsSync(file)) return { secret: fs.readFileSync(file, "utf8").trim(), created: false }
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
      const secret = randomBytes(32).toString("hex")
      fs.writeFileSync(file, secret + "\n", { mode: 0o600, flag: "wx" })
      return { secret, created: true }
    },
    catch: (cause) => new DevSecretError({ file, cause })
  }).pipe(Effect.map(({ secret, created }) => ({ secret: Redacted.make(secret), created, file })))

export class DevSecretError extends Data.TaggedError("DevSecretError")<{ readonly file: string; readonly cause: unknown }> {
  get message() {
    return `cannot read or create the dev secret at ${this.file}: ${String(this.cause)}`
  }
}
