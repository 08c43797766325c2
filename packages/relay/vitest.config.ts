import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "relay",
    include: ["test/**/*.test.ts"],
    // Real sockets and child processes: a relay process needs ~2.5 s to start under tsx.
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
