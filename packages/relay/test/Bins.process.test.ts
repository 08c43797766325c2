import { hostBin, relayBin } from "@effect-relay/testkit"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import { SourceMap } from "node:module"
import * as path from "node:path"

/**
 * The bins users run are the built bundles (scripts/build.mjs, built before the suite by the
 * globalSetup): plain JavaScript started by node, no TypeScript loader, and stack traces that
 * still name our .ts files and lines through the source maps.
 */
const bins = [
  { name: "effect-relay", bin: relayBin, event: "relay.listening" },
  { name: "effect-relay-host", bin: hostBin, event: "tunnel.connected" }
]

const distOf = (bin: string) => path.join(path.dirname(bin), "../dist/main.js")

/** 0-based line and column of `index` in `text`. */
const positionOf = (text: string, index: number) => {
  const before = text.slice(0, index).split("\n")
  return { line: before.length - 1, column: before.at(-1)!.length }
}

describe("built bins", () => {
  for (const { bin, event, name } of bins) {
    it(`${name}: a node shebang, executable, importing ../dist/main.js with source maps on, no tsx`, () => {
      const text = fs.readFileSync(bin, "utf8")
      expect(text.split("\n")[0]).toBe("#!/usr/bin/env node")
      expect(fs.statSync(bin).mode & 0o111).toBe(0o111)
      // A pre-stop hook greps the bins for it: the word itself must not appear.
      expect(text).not.toMatch(/tsx/)
      expect(text).toContain("process.setSourceMapsEnabled(true)")
      expect(text).toContain("../dist/main.js")
    })

    it(`${name}: the map names our sources only, and maps the "${event}" log call back to its .ts line`, () => {
      const dist = distOf(bin)
      const code = fs.readFileSync(dist, "utf8")
      expect(code.trimEnd().endsWith("//# sourceMappingURL=main.js.map")).toBe(true)
      const payload = JSON.parse(fs.readFileSync(`${dist}.map`, "utf8"))
      const sources = (payload.sources as Array<string>).map((s) => path.resolve(path.dirname(dist), s))
      expect(sources.length).toBeGreaterThan(5)
      for (const source of sources) {
        expect(source, "a source of ours").toMatch(/\/packages\/[a-z]+\/src\/.+\.ts$/)
        expect(fs.existsSync(source), `${source} exists`).toBe(true)
      }
      const index = code.indexOf(JSON.stringify(event))
      expect(index).toBeGreaterThan(0)
      const { column, line } = positionOf(code, index)
      const entry = new SourceMap(payload).findEntry(line, column) as { originalSource?: string; originalLine?: number }
      expect(entry.originalSource).toBeDefined()
      const original = path.resolve(path.dirname(dist), entry.originalSource!)
      expect(fs.readFileSync(original, "utf8").split("\n")[entry.originalLine!]).toContain(JSON.stringify(event))
    })
  }

  it.live("a failure's stack trace names the .ts file and line it was raised at", () =>
    Effect.gen(function*() {
      // Production without auth settings: the relay refuses to start; at debug level it prints the error's stack.
      const env: Record<string, string | undefined> = { ...process.env, NODE_ENV: "production", LOG_FORMAT: "json", LOG_LEVEL: "debug" }
      for (const k of ["RELAY_AUTH_SECRET", "RELAY_AUTH_JWKS_URL", "FLY_APP_NAME"]) delete env[k]
      const output = yield* Effect.async<string>((resume) => {
        execFile(process.execPath, [relayBin, "serve", "--port", "0", "--bind", "127.0.0.1"], { env, timeout: 20_000 }, (_error, stdout, stderr) =>
          resume(Effect.succeed(stdout + stderr)))
      })
      const frame = /\((\/[^():]+\/packages\/relay\/src\/[^():]+\.ts):(\d+):\d+\)/.exec(output.replace(/\\n/g, "\n"))
      expect(frame, output).not.toBeNull()
      const [, file, line] = frame!
      expect(fs.readFileSync(file, "utf8").split("\n")[Number(line) - 1]).toContain("DevModeRefused")
    }))
})
