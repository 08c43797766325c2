/**
 * Summarises V8 CPU profiles (`node --cpu-prof`, as `bench:forward --cpu-prof DIR` writes them):
 * the share of samples that were idle, garbage collection and program, and the functions with
 * the most self time, grouped by function and file (bundled dependencies by package name).
 *
 *   npx tsx scripts/cpuprofile-top.ts DIR/relay/*.cpuprofile [--top 25]
 */
import * as fs from "node:fs"
import { flags } from "./lib/bench.js"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly hitCount?: number
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
  readonly startTime: number
  readonly endTime: number
}

const files = process.argv.slice(2).filter((a, i, all) => !a.startsWith("--") && !all[i - 1]?.startsWith("--"))
const options = flags({ top: 25 }, process.argv.slice(2).filter((a) => !files.includes(a)))

/** Where a function lives: node:internal module, our source, or a package (bundled code has no url of its own). */
const placeOf = (url: string) => {
  if (url === "") return ""
  const nm = url.lastIndexOf("node_modules/")
  if (nm !== -1) return url.slice(nm + "node_modules/".length).split("/").slice(0, url.includes("@", nm) ? 2 : 1).join("/")
  return url.replace(/^file:\/\/.*\/(packages|scripts)\//, "$1/").replace(/^node:/, "node:")
}

for (const file of files) {
  const profile = JSON.parse(fs.readFileSync(file, "utf8")) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<string, number>()
  let total = 0
  // Each sample's time is the delta to the next one.
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i + 1] ?? 0
    const node = byId.get(id)!
    const { functionName, url, lineNumber } = node.callFrame
    const key = url === "" ? `${functionName || "(anonymous)"}` : `${functionName || "(anonymous)"}  ${placeOf(url)}:${lineNumber + 1}`
    self.set(key, (self.get(key) ?? 0) + dt)
    total += dt
  })
  const share = (us: number) => `${((100 * us) / total).toFixed(1)}%`
  const ms = (us: number) => `${(us / 1000).toFixed(0)} ms`
  const special = ["(idle)", "(garbage collector)", "(program)"].map((k) => `${k} ${share(self.get(k) ?? 0)}`).join(", ")
  console.log(`${file}: ${ms(profile.endTime - profile.startTime)} profiled, ${profile.samples.length} samples; ${special}`)
  const busy = [...self.entries()].filter(([k]) => !k.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, options.top)
  for (const [key, us] of busy) console.log(`  ${share(us).padStart(6)}  ${ms(us).padStart(7)}  ${key}`)
}
