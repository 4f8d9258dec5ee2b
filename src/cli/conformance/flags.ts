/**
 * A minimal `--name value` / `--switch` parser for the runnable conformance entry points.
 * @internal
 */
export const parseFlags = (
  argv: ReadonlyArray<string>,
  valued: ReadonlyArray<string>,
  switches: ReadonlyArray<string>
): { readonly values: Record<string, string | undefined>; readonly switches: ReadonlySet<string> } => {
  const values: Record<string, string | undefined> = {}
  const on = new Set<string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}`)
    const eq = arg.indexOf("=")
    const name = arg.slice(2, eq < 0 ? undefined : eq)
    if (valued.includes(name)) {
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i]
      if (value === undefined) throw new Error(`--${name} needs a value`)
      values[name] = value
    } else if (switches.includes(name)) {
      on.add(name)
    } else {
      throw new Error(`unknown option --${name}`)
    }
  }
  return { values, switches: on }
}
