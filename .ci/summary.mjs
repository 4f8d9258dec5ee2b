// Prints the plain closing line 'N passed, N failed' from vitest's JSON report.
import fs from "node:fs"
const file = ".tmp/vitest.json"
if (!fs.existsSync(file)) process.exit(0)
const r = JSON.parse(fs.readFileSync(file, "utf8"))
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0)
console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""))
