/**
 * The package's own version, read from its `package.json` (two levels up from `src/internal/` and from
 * `dist/internal/` alike, so it works from the sources and from the build).
 * @internal
 */
import { createRequire } from "node:module"

/** `version` of effect-amp's `package.json`. */
export const packageVersion: string =
  (createRequire(import.meta.url)("../../package.json") as { readonly version: string }).version
