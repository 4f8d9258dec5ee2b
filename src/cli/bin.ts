#!/usr/bin/env node
/**
 * The `effect-amp` command line's executable (see `main.ts`): `dist/cli/bin.js` once built, the package's
 * `bin`. Running it is its only purpose: importing it starts the command line.
 *
 * @internal
 */
import * as Module from "node:module"

// cache compiled code on disk between runs (a third off the startup); main.ts is imported afterwards.
// A namespace import: Node before 22.1 has no enableCompileCache, and a named import would not load there.
Module.enableCompileCache?.()
const { main } = await import("./main.ts")
main()
