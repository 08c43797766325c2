/**
 * HTTP load for the benchmarks, by wrk when it is on PATH (a C program: on two
 * cores it leaves far more CPU to the systems under test than autocannon) or
 * else by autocannon (a devDependency, so a fresh clone always has one).
 */
import autocannon from "autocannon"
import * as fs from "node:fs"
import { spawnChild } from "./processes.js"
import { bodyScript, type LoadFigures, parseWrk, wrkArgs, wrkOnPath, type WrkRun } from "./wrk.js"

export type Tool = "wrk" | "autocannon"

/** `auto`: wrk if it is on PATH, else autocannon. */
export const resolveTool = (wanted: string): Tool => {
  switch (wanted) {
    case "auto":
      return wrkOnPath() ? "wrk" : "autocannon"
    case "wrk":
      if (!wrkOnPath()) throw new Error("--tool wrk: wrk is not on PATH (apt-get install -y wrk), or use --tool autocannon")
      return "wrk"
    case "autocannon":
      return "autocannon"
    default:
      throw new Error(`--tool ${wanted}: expected auto, wrk or autocannon`)
  }
}

/** One bounded load: what wrk is given, whichever tool runs it. */
export interface LoadSpec extends Pick<WrkRun, "url" | "headers" | "connections" | "durationS"> {
  /** Sent as a POST when present. */
  readonly body?: Buffer
}

/** Per-request timeout, the same for both tools (autocannon's default). */
const timeoutS = 10

/** Lua scripts already written, per body. */
const scripts = new WeakMap<Buffer, string>()
const postScript = (body: Buffer, scratchDir: string) => {
  let script = scripts.get(body)
  if (script === undefined || !fs.existsSync(script)) {
    script = bodyScript(scratchDir, `post-${body.length}`, "POST", body)
    scripts.set(body, script)
  }
  return script
}

const runWrk = async (spec: LoadSpec, scratchDir: string): Promise<LoadFigures> => {
  const script = spec.body ? postScript(spec.body, scratchDir) : undefined
  const args = wrkArgs({ url: spec.url, headers: spec.headers, connections: spec.connections, durationS: spec.durationS, timeoutS, ...(script ? { script } : {}) })
  const wrk = spawnChild({ name: "wrk", command: "wrk", args })
  const stdout: Array<string> = []
  wrk.onLine((line, stream) => {
    if (stream === "stdout") stdout.push(line)
  })
  const { code, signal } = await wrk.closed
  if (code !== 0) throw new Error(`wrk ${args.join(" ")} exited with ${code ?? signal}: ${wrk.tail()}`)
  return parseWrk(stdout.join("\n"))
}

const runAutocannon = async (spec: LoadSpec): Promise<LoadFigures> => {
  const result = await autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.durationS,
    headers: spec.headers,
    timeout: timeoutS,
    ...(spec.body ? { method: "POST", body: spec.body } : {})
  })
  return {
    reqPerSec: Math.round(result.requests.average),
    // autocannon's histogram has a resolution of 1 ms.
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    // autocannon counts timeouts among errors too.
    errors: result.errors + result.non2xx
  }
}

/** Runs one bounded load and returns its figures. `scratchDir` holds wrk's Lua scripts and bodies. */
export const runLoad = (tool: Tool, spec: LoadSpec, scratchDir: string): Promise<LoadFigures> =>
  tool === "wrk" ? runWrk(spec, scratchDir) : runAutocannon(spec)
