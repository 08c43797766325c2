import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { relaySettings } from "../src/config/RelaySettings.js"

/**
 * The deploy files agree with each other and with the relay: the drain deadline stays below
 * Fly's kill_timeout, the image copies what exists and .dockerignore does not hide it, and the
 * entrypoint is the relay's bin. (No Docker daemon or flyctl is needed.)
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const read = (file: string) => fs.readFileSync(path.join(repoRoot, file), "utf8")

/** `key = "value"` lines of our own fly.toml files (flat string values are all these checks need). */
const tomlString = (text: string, key: string): string => {
  const found = [...text.matchAll(new RegExp(`^\\s*${key}\\s*=\\s*["']([^"']*)["']`, "gm"))]
  expect(found, `exactly one ${key} line`).toHaveLength(1)
  return found[0][1]
}

const seconds = (duration: string) => {
  const m = /^(\d+)s$/.exec(duration)
  expect(m, `a duration in seconds: ${duration}`).not.toBeNull()
  return Number(m![1])
}

/** A .dockerignore pattern as a RegExp over context-relative paths. */
const ignoreRegExp = (pattern: string) =>
  new RegExp(
    "^" +
      pattern
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .replace(/\*\*\//g, "\u0000")
        .replace(/\*/g, "[^/]*")
        .replace(/\?/g, "[^/]")
        .replace(/\u0000/g, "(?:.*/)?") +
      "$"
  )

describe("deploy files", () => {
  for (const file of ["fly.toml", "fly.staging.toml"]) {
    it(`${file}: SIGINT, and the drain deadline below kill_timeout by at least a second`, () => {
      const text = read(file)
      expect(tomlString(text, "kill_signal")).toBe("SIGINT")
      const killMs = seconds(tomlString(text, "kill_timeout")) * 1000
      const deadlineMs = Number(tomlString(text, "DRAIN_DEADLINE_MS"))
      const flushMs = Number(tomlString(text, "DRAIN_FLUSH_MS"))
      expect(killMs).toBe(10_000)
      expect(deadlineMs).toBeGreaterThan(flushMs)
      expect(killMs - deadlineMs).toBeGreaterThanOrEqual(1000)
      expect(tomlString(text, "auto_stop_machines")).toBe("off")
      expect(tomlString(text, "strategy")).toBe("rolling")
      // The health check is /health; Fly scrapes /metrics from the relay's own port.
      expect(text).toMatch(/\[\[http_service\.checks\]\][^[]*?\n\s*path\s*=\s*"\/health"/)
      expect(text).toMatch(/\[metrics\][^[]*?\n\s*port\s*=\s*8080[^[]*?\n\s*path\s*=\s*"\/metrics"/)
      expect(tomlString(text, "type")).toBe("connections")
      expect(tomlString(text, "PORT")).toBe("8080")
      expect(text).toMatch(/^\s*internal_port\s*=\s*8080\s*$/m)
      // Per-machine values come from FLY_REGION / FLY_MACHINE_ID; secrets never live here.
      expect(text).not.toMatch(/^\s*(REGION|MACHINE_ID|RELAY_AUTH_SECRET|RELAY_PEER_SECRET|REDIS_URL)\s*=/m)
    })
  }

  it("the relay's default drain deadline matches fly.toml's", () => {
    expect(relaySettings.drainDeadlineMs.defaultText).toBe("8000")
    expect(tomlString(read("fly.toml"), "DRAIN_DEADLINE_MS")).toBe("8000")
  })

  it("Dockerfile: one pinned base, its context COPYs exist and are not dockerignored, the entrypoint is the relay's bin", () => {
    const dockerfile = read("Dockerfile")
    const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1])
    expect(bases.length).toBe(2)
    expect(new Set(bases).size).toBe(1)
    expect(bases[0]).toMatch(/^node:20\.\d+\.\d+-[a-z]+-slim$/)

    const patterns = read(".dockerignore").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))
    expect(patterns.filter((p) => p.startsWith("!"))).toEqual([])
    const ignored = (p: string) => {
      const parts = p.split("/")
      return parts.some((_, i) => patterns.some((pattern) => ignoreRegExp(pattern).test(parts.slice(0, i + 1).join("/"))))
    }
    const sources = [...dockerfile.matchAll(/^COPY\s+(?!--from)(.+)$/gm)].flatMap((m) => m[1].trim().split(/\s+/).slice(0, -1))
    expect(sources).toContain("packages/relay/src")
    expect(sources).toContain("scripts/build.mjs")
    for (const source of sources) {
      expect(fs.existsSync(path.join(repoRoot, source)), `${source} exists`).toBe(true)
      expect(ignored(source), `${source} is not dockerignored`).toBe(false)
    }
    // A local build never enters the context: the build stage builds from the sources.
    for (const kept of ["packages/relay/node_modules", "node_modules", "packages/relay/dist", ".git", "bench-results", ".effect-relay", "packages/relay/test", "scripts/lib", "scripts/bench-tunnels.ts"]) {
      expect(ignored(kept), `${kept} is dockerignored`).toBe(true)
    }

    const relayPackage = JSON.parse(read("packages/relay/package.json"))
    const entrypoint = JSON.parse(/^ENTRYPOINT\s+(\[.*\])$/m.exec(dockerfile)![1]) as Array<string>
    expect(entrypoint).toContain("node")
    expect(entrypoint).not.toContain("npm")
    expect(entrypoint.at(-1)).toBe(path.posix.join("/app/packages/relay", relayPackage.bin["effect-relay"]))
    expect(JSON.parse(/^CMD\s+(\[.*\])$/m.exec(dockerfile)![1])).toEqual(["serve"])
    expect(dockerfile).toMatch(/^USER node$/m)
  })

  it("Dockerfile: the build stage bundles the relay; the runtime stage holds the bundle, the bin and the manifest only", () => {
    const dockerfile = read("Dockerfile")
    const [build, runtime] = dockerfile.split(/^FROM\s.*$/m).slice(1)
    expect(build).toMatch(/^RUN npm ci --ignore-scripts /m)
    expect(build).toMatch(/^RUN node scripts\/build\.mjs relay$/m)

    // Runtime: nothing installed with npm, nothing that runs TypeScript, no sources, no node_modules.
    expect(runtime).not.toMatch(/^RUN .*\bnpm\b/m)
    expect(runtime).not.toMatch(/tsx|typescript|node_modules|\/src\b/)
    const copies = [...runtime.matchAll(/^COPY\s+(.+)$/gm)].map((m) => m[1].trim().split(/\s+/))
    expect(copies).toEqual([
      ["packages/relay/package.json", "packages/relay/"],
      ["packages/relay/bin", "packages/relay/bin"],
      ["--from=build", "/app/packages/relay/dist", "packages/relay/dist"]
    ])
    // The bundle is ESM next to the bin: the manifest copied in must say so.
    expect(JSON.parse(read("packages/relay/package.json")).type).toBe("module")
    // What the bin imports is what the build stage writes.
    expect(read("packages/relay/bin/effect-relay.js")).toContain("../dist/main.js")
    expect(read("scripts/build.mjs")).toContain("packages/relay/dist/main.js")
  })
})
