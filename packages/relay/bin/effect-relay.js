#!/usr/bin/env node
// Runs the TypeScript entry in this very process (no wrapper), so SIGINT and
// SIGTERM reach the relay and its exit code is this process's exit code.
import { register } from "tsx/esm/api"

register()
await import("../src/main.ts")
