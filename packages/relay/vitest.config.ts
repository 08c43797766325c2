import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "relay",
    include: ["test/**/*.test.ts"],
    // Measured alone, after the rest: see vitest.timing.config.ts.
    exclude: ["test/**/*.timing.test.ts"],
    // Builds the bins once per run (see the file): process tests spawn dist/, as users do.
    globalSetup: ["../testkit/src/globalSetup.ts"],
    // Real sockets and child processes: a built relay starts in ~0.3 s, but a busy machine and the
    // benchmark scripts (run with tsx) take seconds.
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
