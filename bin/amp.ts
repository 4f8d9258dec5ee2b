#!/usr/bin/env node
// The `amp` command line (see src/cli/main.ts).
import { main } from "../src/cli/main.ts"

main()
