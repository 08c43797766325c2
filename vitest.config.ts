import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    projects: ["packages/*", "packages/relay/vitest.timing.config.ts"]
  }
})
