#!/usr/bin/env node
/**
 * Builds the relay and the host agent into one plain JavaScript file each, so their bins run
 * with node alone (no TypeScript loader at run time):
 *
 *   packages/relay/src/main.ts -> packages/relay/dist/main.js (+ main.js.map)
 *   packages/host/src/main.ts  -> packages/host/dist/main.js  (+ main.js.map)
 *
 *   node scripts/build.mjs            both
 *   node scripts/build.mjs relay      only the relay (what `npm start` needs)
 *
 * Plain JavaScript on purpose: it runs in `prepare` and in the image's build stage, before
 * anything could load TypeScript. Why a bundle, and why these options (measured on the 2-core
 * development VM, relay spawn to /ready and RSS at idle, five runs each):
 * - node_modules are bundled in: with them left external (one file per module, like tsc's
 *   output) the relay needed 710-860 ms and 121-123 MB; bundled, 300-370 ms and 97-98 MB (both
 *   without source maps). The bundle then depends on nothing but Node's built-ins, so the image
 *   needs no node_modules.
 *   ws's optional native helpers (bufferutil, utf-8-validate) stay out: ws loads them in a
 *   try/catch and works without them. Any other import left outside the bundle fails the build.
 * - Source maps stay on (the bins call process.setSourceMapsEnabled), but the map keeps only
 *   our own sources (packages/<name>/src), one mapping per line (see ownLines): the full map
 *   (effect's own maps chained in, 2.3 MB) made Node parse it at every start, 490-730 ms and
 *   155-170 MB; our sources with every token mapped, 99 MB; one mapping per line, 95.5 MB (no
 *   map at all: 95 MB). Frames inside dependencies keep the bundle's file:line and their
 *   function names (identifiers are not minified).
 * - Whitespace and syntax are minified (not identifiers): 3-4 MB less at idle than as printed.
 */
import * as esbuild from "esbuild"
import { builtinModules } from "node:module"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

export const targets = {
  relay: { entry: "packages/relay/src/main.ts", outfile: "packages/relay/dist/main.js" },
  host: { entry: "packages/host/src/main.ts", outfile: "packages/host/dist/main.js" }
}

/** Optional native add-ons that ws requires in a try/catch: never bundled, never needed. */
const optionalExternals = ["bufferutil", "utf-8-validate"]
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))

// ---- source map: keep our sources only -------------------------------------------------------

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
const B64_VALUE = new Map([...B64].map((c, i) => [c, i]))

const decodeSegment = (text) => {
  const fields = []
  let value = 0
  let shift = 0
  for (const c of text) {
    const digit = B64_VALUE.get(c)
    value += (digit & 31) << shift
    if (digit & 32) shift += 5
    else {
      fields.push(value & 1 ? -(value >>> 1) : value >>> 1)
      value = 0
      shift = 0
    }
  }
  return fields
}

const encodeValue = (n) => {
  let value = n < 0 ? (-n << 1) | 1 : n << 1
  let text = ""
  do {
    let digit = value & 31
    value >>>= 5
    if (value) digit |= 32
    text += B64[digit]
  } while (value)
  return text
}

/**
 * A source map (v3) with only the mappings into the sources `keep` accepts, one per run of the
 * same original line: a stack frame still gets its file and line exactly, and the column of the
 * line's first mapped token (esbuild maps nearly every token; Node keeps every mapping in memory,
 * and one per line cut the relay's idle RSS by ~3.5 MB). No names: Node names frames after the
 * functions themselves, which are not minified. Where dropped code follows kept code, an unmapped
 * segment (generated column only) ends the kept one, so a frame in a dependency is never
 * attributed to the last of our lines before it (Node looks up the nearest preceding mapping).
 */
export const ownLines = (map, keep) => {
  const newIndex = new Map()
  const sources = []
  map.sources.forEach((source, i) => {
    if (keep(source)) {
      newIndex.set(i, sources.length)
      sources.push(source)
    }
  })
  // Absolute values decoded so far, and the last values written (the format stores deltas).
  let source = 0, line = 0, column = 0
  let outSource = 0, outLine = 0, outColumn = 0
  let lastMapped = false
  const lines = map.mappings.split(";").map((text) => {
    const segments = []
    let genColumn = 0
    let outGenColumn = 0
    // The (source, line) of the last segment written on this generated line.
    let current = null
    for (const segment of text === "" ? [] : text.split(",")) {
      const f = decodeSegment(segment)
      genColumn += f[0]
      if (f.length >= 4) {
        source += f[1]
        line += f[2]
        column += f[3]
      }
      if (f.length >= 4 && newIndex.has(source)) {
        const s = newIndex.get(source)
        if (current === `${s}:${line}`) continue
        current = `${s}:${line}`
        segments.push(encodeValue(genColumn - outGenColumn) + encodeValue(s - outSource) + encodeValue(line - outLine) + encodeValue(column - outColumn))
        outGenColumn = genColumn
        outSource = s
        outLine = line
        outColumn = column
        lastMapped = true
      } else if (lastMapped) {
        segments.push(encodeValue(genColumn - outGenColumn))
        outGenColumn = genColumn
        current = null
        lastMapped = false
      }
    }
    // A generated line with nothing mapped after one of ours: mark its start as unmapped.
    if (text === "" && lastMapped) {
      segments.push(encodeValue(0))
      lastMapped = false
    }
    return segments.join(",")
  })
  return { ...map, sources, names: [], mappings: lines.join(";") }
}

// ---- build -----------------------------------------------------------------------------------

const ownSource = (source) => !source.split("/").includes("node_modules")

/** Builds one target; returns what it wrote. Throws when esbuild fails or an import stayed outside. */
export const build = async (name) => {
  const { entry, outfile } = targets[name]
  const started = performance.now()
  const result = await esbuild.build({
    absWorkingDir: repoRoot,
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: optionalExternals,
    // CommonJS dependencies (ws, ioredis) call require() for Node's built-ins: give them one.
    banner: { js: "import { createRequire as __createRequire } from \"node:module\"; const require = __createRequire(import.meta.url);" },
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: "none",
    sourcemap: "linked",
    sourcesContent: false,
    metafile: true,
    write: false,
    logLevel: "warning"
  })
  const outside = Object.values(result.metafile.outputs)
    .flatMap((output) => output.imports)
    .filter((i) => i.external && !builtins.has(i.path) && !optionalExternals.includes(i.path))
    .map((i) => i.path)
  if (outside.length > 0) {
    throw new Error(`${entry}: imports left outside the bundle: ${[...new Set(outside)].join(", ")} (the image has no node_modules)`)
  }
  const written = {}
  fs.mkdirSync(path.join(repoRoot, path.dirname(outfile)), { recursive: true })
  for (const file of result.outputFiles) {
    const contents = file.path.endsWith(".map")
      ? JSON.stringify(ownLines(JSON.parse(file.text), ownSource))
      : file.contents
    // Write to a temporary name, then rename: a process starting meanwhile never reads half a file.
    const tmp = `${file.path}.${process.pid}.tmp`
    fs.writeFileSync(tmp, contents)
    fs.renameSync(tmp, file.path)
    written[path.relative(repoRoot, file.path)] = fs.statSync(file.path).size
  }
  return { name, ms: Math.round(performance.now() - started), written }
}

const kb = (bytes) => `${Math.round(bytes / 1024).toLocaleString("en-US")} KB`

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const names = process.argv.slice(2)
  const unknown = names.filter((n) => !(n in targets))
  if (unknown.length > 0) {
    console.error(`build: unknown target ${unknown.join(", ")}; targets: ${Object.keys(targets).join(", ")}`)
    process.exit(2)
  }
  try {
    const results = await Promise.all((names.length > 0 ? names : Object.keys(targets)).map(build))
    for (const r of results) {
      console.log(`build: ${Object.entries(r.written).map(([file, size]) => `${file} ${kb(size)}`).join(", ")} in ${r.ms} ms`)
    }
  } catch (error) {
    // esbuild has printed its own errors (logLevel warning); ours have only a message.
    if (!error.errors) console.error(`build: ${error.message}`)
    process.exit(1)
  }
}
