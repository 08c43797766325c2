#!/usr/bin/env node
// Runs the built host agent (../dist/main.js, bundled from ../src by scripts/build.mjs: `npm run
// build`, also part of `npm ci`, `npm start` and `npm test`) in this process, with node alone: no
// child, so signals reach the program and its exit code is this process's.
// Source maps on first, so stack traces name the .ts files and lines.
import { existsSync } from "node:fs"

const entry = new URL("../dist/main.js", import.meta.url)
if (!existsSync(entry)) {
  console.error(`effect-relay-host: ${entry.pathname} is missing; build it with \`npm run build\` at the repository root`)
  process.exit(1)
}
process.setSourceMapsEnabled(true)
await import(entry.href)
