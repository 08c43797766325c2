import { Effect } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as net from "node:net"

/** A free TCP port on 127.0.0.1 (bound and released). */
export const freePort = Effect.async<number>((resume) => {
  const probe = net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = probe.address() as net.AddressInfo
    probe.close(() => resume(Effect.succeed(port)))
  })
})

const waitForPort = (port: number, timeoutMs: number) =>
  Effect.promise(async () => {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const open = await new Promise<boolean>((resolve) => {
        const socket = net.connect(port, "127.0.0.1", () => {
          socket.destroy()
          resolve(true)
        })
        socket.on("error", () => resolve(false))
      })
      if (open) return
      await new Promise((r) => setTimeout(r, 25))
    }
    throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`)
  })

/**
 * A private `redis-server` on a free port (nothing persisted), for tests that stop and restart
 * Redis. `stop` and `start` reuse the same port; the scope's end stops it.
 */
export const privateRedis = Effect.gen(function*() {
  const port = yield* freePort
  let child: ChildProcess | undefined
  const start = Effect.gen(function*() {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore"
    })
    child.on("error", () => {})
    yield* waitForPort(port, 5000)
  })
  const stop = Effect.promise(() =>
    new Promise<void>((resolve) => {
      const current = child
      if (current === undefined || current.exitCode !== null || current.signalCode !== null) return resolve()
      current.once("exit", () => resolve())
      current.kill("SIGKILL")
    })
  )
  yield* Effect.acquireRelease(start, () => stop)
  return { port, url: `redis://127.0.0.1:${port}`, start, stop }
})
