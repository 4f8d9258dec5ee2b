/** `node scripts/clean.ts DIR...`: removes build output directories (portable `rm -rf`). */
import * as Fs from "node:fs"

for (const dir of process.argv.slice(2)) Fs.rmSync(dir, { recursive: true, force: true })
