/**
 * What every server of bench:http-stack shares (scripts/bench-http-stack.ts bundles each
 * `*-server.ts` here with esbuild and runs it with node alone, as the relay's bin runs):
 * - GET /small answers 200 with `small` as JSON (about 100 bytes, stringified per request);
 * - POST /body reads the whole body into one Buffer and answers `{"length":N}`;
 * - a WebSocket server (ws-*, platform-socket) echoes every message on any upgrade.
 * Each prints `{"ready":true,"port":N,...}` on stdout once it listens on 127.0.0.1, and answers
 * an IPC message `{ type: "memory" }` with `{ memory: process.memoryUsage() }` after a full GC when node
 * runs with --expose-gc (`gc: false` otherwise).
 */
export const small = {
  ok: true,
  service: "effect-relay-bench",
  region: "bench",
  message: "a small JSON answer, about 100 bytes"
} as const

export const ready = (port: number, stack: string) =>
  console.log(JSON.stringify({
    ready: true,
    port,
    stack,
    execArgv: process.execArgv,
    nodeOptions: process.env.NODE_OPTIONS ?? "",
    uptimeMs: Math.round(process.uptime() * 1000)
  }))

/** IPC `{ type: "memory" }` -> a full GC (if exposed), then the process's memory. */
export const answerMemory = () => {
  process.on("message", (message) => {
    if ((message as { type?: unknown } | null)?.type !== "memory") return
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc !== undefined) {
      gc()
      gc()
    }
    process.send?.({ memory: process.memoryUsage(), gc: gc !== undefined })
  })
}
