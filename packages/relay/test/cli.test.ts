import { relayBin, testSecret } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as jose from "jose"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const run = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}, cwd?: string) =>
  Effect.async<{ code: number; stdout: string; stderr: string }>((resume) => {
    const clean = { ...process.env, ...env }
    for (const k of ["RELAY_AUTH_SECRET", "RELAY_AUTH_JWKS_URL", "NODE_ENV", "FLY_APP_NAME", "PUBLIC_DOMAIN", "RELAY_SESSION_SECRET"]) if (!(k in env)) delete clean[k]
    execFile(process.execPath, [relayBin, ...args], { env: clean as NodeJS.ProcessEnv, cwd, timeout: 20_000 }, (error, stdout, stderr) =>
      resume(Effect.succeed({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr })))
  })

describe("effect-relay CLI", () => {
  it.live("--help lists the commands, and serve --help its flags with their env vars", () =>
    Effect.gen(function*() {
      const root = yield* run(["--help"])
      expect(root.code).toBe(0)
      expect(root.stdout).toContain("serve")
      expect(root.stdout).toContain("token")
      const serve = yield* run(["serve", "--help"])
      expect(serve.code).toBe(0)
      for (const text of ["--port", "PORT", "--region", "--machine-id", "RELAY_AUTH_SECRET", "DRAIN_DEADLINE_MS"]) expect(serve.stdout).toContain(text)
    }))

  it.live("token --org prints an HS256 token with the org claim and the ttl", () =>
    Effect.gen(function*() {
      const out = yield* run(["token", "--org", "acme", "--ttl", "15m"], { RELAY_AUTH_SECRET: testSecret })
      expect(out.code).toBe(0)
      const { payload } = yield* Effect.promise(() => jose.jwtVerify(out.stdout.trim(), new TextEncoder().encode(testSecret)))
      expect(payload.org).toBe("acme")
      expect(payload.exp! - payload.iat!).toBe(15 * 60)
      const two = yield* run(["token", "--org", "a", "--org", "b"], { RELAY_AUTH_SECRET: testSecret })
      const decoded = jose.decodeJwt(two.stdout.trim())
      expect(decoded.orgs).toEqual(["a", "b"])
    }))

  it.live("without auth settings: dev mode creates a 0600 secret that token then uses; production refuses to start", () =>
    Effect.gen(function*() {
      const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "relay-cli-"))
      const minted = yield* run(["token", "--org", "acme"], {}, cwd)
      expect(minted.code).toBe(0)
      const secretFile = path.join(cwd, ".effect-relay", "dev-secret")
      expect(fs.statSync(secretFile).mode & 0o777).toBe(0o600)
      const secret = fs.readFileSync(secretFile, "utf8").trim()
      yield* Effect.promise(() => jose.jwtVerify(minted.stdout.trim(), new TextEncoder().encode(secret)))
      for (const env of [{ NODE_ENV: "production" }, { FLY_APP_NAME: "relay" }]) {
        const refused = yield* run(["serve", "--port", "0"], env, cwd)
        expect(refused.code).not.toBe(0)
        expect(refused.stdout + refused.stderr).toMatch(/RELAY_AUTH_SECRET/)
      }
      fs.rmSync(cwd, { recursive: true, force: true })
    }), 60_000)

  it.live("PUBLIC_DOMAIN must be a domain name; with JWKS it needs RELAY_SESSION_SECRET: one line each, exit 1, before listening", () =>
    Effect.gen(function*() {
      for (const domain of ["https://relay.example.com", "relay.example.com:443", "*.relay.example.com", "relay..example.com"]) {
        const refused = yield* run(["serve", "--port", "0", "--public-domain", domain], { RELAY_AUTH_SECRET: testSecret })
        expect(refused.code, domain).toBe(1)
        expect(refused.stderr, domain).toContain("--public-domain must be a domain name")
      }
      const jwks = yield* run(["serve", "--port", "0"], { RELAY_AUTH_JWKS_URL: "https://issuer.example/jwks", PUBLIC_DOMAIN: "relay.example.com" })
      expect(jwks.code).toBe(1)
      expect(jwks.stderr.trim().split("\n")).toHaveLength(1)
      expect(jwks.stderr).toMatch(/^effect-relay: RELAY_SESSION_SECRET is required with RELAY_AUTH_JWKS_URL and PUBLIC_DOMAIN/)
      expect(jwks.stdout).not.toContain("relay.listening")
    }), 60_000)
})
