/**
 * The log-event catalogue (src/log-events.ts) is the list of every event name
 * the code logs, and the README's "Log events" table is that list.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LOG_EVENTS } from "../src/log-events.js";

const SRC = new URL("../src/", import.meta.url).pathname;
const EVENT_NAME = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** The value expression after each `event:` up to the next `,` or `}` outside brackets and strings. */
function eventExpressions(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/\bevent:\s*/g)) {
    let i = (m.index ?? 0) + m[0].length;
    const start = i;
    let depth = 0;
    for (; i < text.length; i++) {
      const c = text[i] as string;
      if (c === '"' || c === "`" || c === "'") {
        for (i++; i < text.length && text[i] !== c; i++) if (text[i] === "\\") i++;
      } else if (c === "(" || c === "[" || c === "{") depth++;
      else if (c === ")" || c === "]" || c === "}") {
        if (depth === 0) break;
        depth--;
      } else if (c === "," && depth === 0) break;
    }
    out.push(text.slice(start, i));
  }
  return out;
}

/** Event names an expression can produce: plain literals, and template literals as patterns (`job.${to}`). */
function namesIn(expr: string): { literal: string[]; patterns: RegExp[]; shown: string[] } {
  const literal = [...expr.matchAll(/"([^"\\]*)"/g)].map((m) => m[1] as string).filter((s) => EVENT_NAME.test(s));
  const templates = [...expr.matchAll(/`([^`]*)`/g)].map((m) => m[1] as string).filter((s) => EVENT_NAME.test(s.replace(/\$\{[^}]*\}/g, "x")));
  const patterns = templates.map((t) => new RegExp(`^${t.split(/\$\{[^}]*\}/).map((part) => part.replace(/[.]/g, "\\.")).join("[a-z0-9_]+")}$`));
  return { literal, patterns, shown: templates };
}

function logged(): { file: string; literal: string[]; patterns: RegExp[]; shown: string[] }[] {
  return sourceFiles(SRC).flatMap((file) => eventExpressions(readFileSync(file, "utf8")).map((expr) => ({ file: file.slice(SRC.length), ...namesIn(expr) })));
}

/** The rows of the README's "Log events" table: event → meaning. */
function readmeEvents(): Map<string, string> {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("\n### Log events\n");
  expect(start, "README has a '### Log events' section").toBeGreaterThan(0);
  const end = readme.indexOf("\n#", start + 5);
  const rows = new Map<string, string>();
  for (const line of readme.slice(start, end < 0 ? undefined : end).split("\n")) {
    const m = /^\| `([^`]+)` \| (.*) \|$/.exec(line);
    if (m) rows.set(m[1] as string, m[2] as string);
  }
  return rows;
}

describe("log-event catalogue", () => {
  const catalogue = Object.keys(LOG_EVENTS);

  it("lists every event name logged in src/", () => {
    const uses = logged();
    expect(uses.length).toBeGreaterThan(150);
    const missing: string[] = [];
    for (const use of uses) {
      for (const name of use.literal) if (!catalogue.includes(name)) missing.push(`${use.file}: ${name}`);
      use.patterns.forEach((p, i) => {
        if (!catalogue.some((name) => p.test(name))) missing.push(`${use.file}: ${use.shown[i] ?? ""}`);
      });
    }
    expect(missing, "event names logged but not in src/log-events.ts").toEqual([]);
  });

  it("lists no name the code never logs", () => {
    const uses = logged();
    const stale = catalogue.filter((name) => !uses.some((u) => u.literal.includes(name) || u.patterns.some((p) => p.test(name))));
    expect(stale, "names in src/log-events.ts that no code logs").toEqual([]);
  });

  it("gives each name a one-line meaning", () => {
    for (const [name, meaning] of Object.entries(LOG_EVENTS)) {
      expect(name).toMatch(EVENT_NAME);
      expect(`${name}: ${meaning}`).toMatch(/^[^\n]+: [^\n]{6,}$/);
    }
  });

  it("is the README's list of log events, with the same meanings", () => {
    expect(Object.fromEntries(readmeEvents())).toEqual(LOG_EVENTS);
  });
});
