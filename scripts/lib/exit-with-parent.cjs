// Preloaded (`--require`) into every process a benchmark starts: exits when the
// process that started it is gone (its parent pid changes), so a benchmark
// killed with SIGKILL, which runs no handler, still leaves nothing behind.
// One unref'd timer a second; nothing else.
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) process.exit(1)
}, 1000).unref()
