#!/usr/bin/env node
// The `amp` command line (see src/cli/main.ts).
import { enableCompileCache } from "node:module"

// cache compiled code on disk between runs (a third off the startup); main.ts is imported afterwards
enableCompileCache?.()
const { main } = await import("../src/cli/main.ts")
main()
