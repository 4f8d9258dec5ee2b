import { defineConfig } from "vitest/config"

// The package and docs tests (npm pack, npm install, two TypeScript compilers, TypeDoc) keep both cores
// busy for minutes; run together with the timing-sensitive process and socket tests they would starve
// them. So they form a second group that starts when the first has finished.
const heavy = ["test/package.test.ts", "test/docs.test.ts"]

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Interop and transport tests spawn processes and open sockets; two workers fit a 2-core machine.
    maxWorkers: 2,
    reporters: ["default", "json"],
    outputFile: { json: ".tmp/vitest.json" },
    projects: [
      {
        extends: true,
        test: { name: "suite", include: ["test/**/*.test.ts"], exclude: heavy, sequence: { groupOrder: 0 } }
      },
      {
        extends: true,
        test: { name: "package", include: heavy, sequence: { groupOrder: 1 } }
      }
    ]
  }
})
