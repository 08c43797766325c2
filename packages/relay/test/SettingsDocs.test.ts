import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { sections, withTable } from "../../../scripts/lib/settings-docs.js"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

describe("settings documentation", () => {
  for (const section of sections) {
    it(`${section.file}'s ${section.marker} table is the one the settings make (npm run settings-table)`, () => {
      const text = fs.readFileSync(path.join(repoRoot, section.file), "utf8")
      const expected = withTable(text, section)
      expect(expected, `markers missing in ${section.file}`).toBeDefined()
      expect(text).toBe(expected)
    })
  }
})
