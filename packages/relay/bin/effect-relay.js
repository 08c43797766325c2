#!/usr/bin/env node
// Runs the built relay (../dist/main.js, bundled from ../src by scripts/build.mjs: `npm run build`,
// also part of `npm ci`, `npm start` and `npm test`) in this very process, with node alone: no
// wrapper, so SIGINT and SIGTERM reach the relay and its exit code is this process's.
// Source maps on first, so stack traces name the .ts files and lines.
import { existsSync } from "node:fs"

const entry = new URL("../dist/main.js", import.meta.url)
if (!existsSync(entry)) {
  console.error(`effect-relay: ${entry.pathname} is missing; build it with \`npm run build\` at the repository root`)
  process.exit(1)
}
process.setSourceMapsEnabled(true)
await import(entry.href)
