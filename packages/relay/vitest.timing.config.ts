import { defineProject } from "vitest/config"

/**
 * Tests that measure time or memory of a relay process against a bound (a tenant's p99 under
 * another's flood, RSS under an attack): they run after every other test, one file at a time, so
 * the rest of the suite does not share the two cores with what they measure.
 */
export default defineProject({
  test: {
    name: "relay-timing",
    include: ["test/**/*.timing.test.ts"],
    globalSetup: ["../testkit/src/globalSetup.ts"],
    fileParallelism: false,
    sequence: { groupOrder: 1 },
    testTimeout: 60_000,
    hookTimeout: 30_000
  }
})
