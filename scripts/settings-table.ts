/**
 * Writes the settings tables into the READMEs (see lib/settings-docs.ts): `npm run settings-table`.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { sections, withTable } from "./lib/settings-docs.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
for (const section of sections) {
  const file = path.join(root, section.file)
  const updated = withTable(fs.readFileSync(file, "utf8"), section)
  if (updated === undefined) {
    console.error(`${section.file}: no <!-- ${section.marker} --> markers`)
    process.exit(1)
  }
  fs.writeFileSync(file, updated)
  console.log(`${section.file}: ${section.marker} written`)
}
