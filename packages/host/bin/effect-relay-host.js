#!/usr/bin/env node
// Runs the TypeScript entry in this process (no child), so signals reach the
// program and its exit code is this process's.
import { register } from "tsx/esm/api"

register()
await import("../src/main.ts")
