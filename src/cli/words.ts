/**
 * Splits the `--exec` command line into words, as a POSIX shell would for a simple command: blanks
 * separate words; 'single quotes' keep everything; "double quotes" keep everything but \" \\ \$ \`;
 * a backslash outside quotes keeps the next character. No expansion, globbing, pipes or redirections:
 * the command is started directly, without a shell.
 *
 * @internal
 */
import { UsageError } from "./values.ts"

/** The words of `text`. Throws `UsageError` for an unclosed quote or an empty command. */
export const splitCommandLine = (text: string): Array<string> => {
  const words: Array<string> = []
  let word = ""
  let inWord = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (c === " " || c === "\t" || c === "\n") {
      if (inWord) words.push(word)
      word = ""
      inWord = false
      continue
    }
    inWord = true
    if (c === "\\") {
      if (i + 1 < text.length) word += text[++i]
      continue
    }
    if (c === "'") {
      const end = text.indexOf("'", i + 1)
      if (end < 0) throw new UsageError(`--exec: unclosed ' in ${JSON.stringify(text)}`)
      word += text.slice(i + 1, end)
      i = end
      continue
    }
    if (c === "\"") {
      let j = i + 1
      for (; j < text.length && text[j] !== "\""; j++) {
        if (text[j] === "\\" && j + 1 < text.length && "\"\\$`".includes(text[j + 1]!)) j++
        word += text[j]
      }
      if (j >= text.length) throw new UsageError(`--exec: unclosed " in ${JSON.stringify(text)}`)
      i = j
      continue
    }
    word += c
  }
  if (inWord) words.push(word)
  if (words.length === 0) throw new UsageError("--exec: empty command line")
  return words
}
