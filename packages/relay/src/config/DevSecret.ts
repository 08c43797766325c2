import { Data, Effect, Redacted } from "effect"
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

/** Dev mode is for laptops: a production-looking environment must configure auth explicitly. */
export const assertDevModeAllowed = Effect.suspend(() => {
  if (process.env.NODE_ENV === "production") return Effect.fail(new DevModeRefused({ why: "NODE_ENV=production" }))
  if (process.env.FLY_APP_NAME) return Effect.fail(new DevModeRefused({ why: "FLY_APP_NAME is set" }))
  return Effect.void
})

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
