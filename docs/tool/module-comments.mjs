// TypeDoc plugin: a module's documentation is the doc comment at the top of its file.
//
// effect-amp's modules open with a doc comment (what the module is, then `@since`), as Effect's own do.
// TypeDoc takes a file's first comment as the module's only when it carries `@module`; this plugin gives
// every module without a comment the first `/** … */` of its file, so the sources need no TypeDoc-only tag.
import * as Fs from "node:fs"
import { Comment, CommentTag, Converter, ReflectionKind } from "typedoc"

const firstDocComment = (text) => {
  const match = /^(?:#![^\n]*\n)?\s*\/\*\*([\s\S]*?)\*\//.exec(text)
  if (match === null) return undefined
  return match[1].split("\n").map((line) => line.replace(/^\s*\* ?/, "")).join("\n").trim()
}

const inlineLinks = (text) => text.replace(/\{@link\s+([^}\s|]+)(?:\s*\|?\s*([^}]*))?\}/g, (_, target, label) => `\`${label || target}\``)

/** @param {import("typedoc").Application} app */
export const load = (app) => {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const reflection of context.project.getReflectionsByKind(ReflectionKind.Module)) {
      if (reflection.comment !== undefined) continue
      const file = reflection.sources?.[0]?.fullFileName
      if (file === undefined) continue
      const raw = firstDocComment(Fs.readFileSync(file, "utf8"))
      if (raw === undefined) continue
      const summary = []
      const tags = []
      for (const line of raw.split("\n")) {
        const tag = /^(@[a-zA-Z]+)\s*(.*)$/.exec(line)
        if (tag !== null) tags.push(new CommentTag(tag[1], tag[2] ? [{ kind: "text", text: tag[2] }] : []))
        else if (tags.length === 0) summary.push(line)
      }
      reflection.comment = new Comment([{ kind: "text", text: inlineLinks(summary.join("\n").trim()) }], tags)
    }
  })
}
