import { execFileSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/**
 * vitest globalSetup of the projects whose tests run the bins (relay, host, testkit): builds
 * packages/{relay,host}/dist once, before any test, so process tests spawn exactly what users
 * run. Every project's globalSetup runs in vitest's one main process, one after the other: the
 * first one builds and marks the environment, the others see the mark and skip.
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const mark = "EFFECT_RELAY_TEST_BUILD_DONE"

export const setup = () => {
  if (process.env[mark] === "1") return
  try {
    execFileSync(process.execPath, [path.join(repoRoot, "scripts/build.mjs")], { cwd: repoRoot, stdio: "pipe", encoding: "utf8" })
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string }
    throw new Error(`building the bins before the tests failed:\n${e.stdout ?? ""}${e.stderr ?? e.message}`)
  }
  process.env[mark] = "1"
}
