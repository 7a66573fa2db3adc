import { readFileSync } from "node:fs";
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Node } from "yaml";
import type { z } from "zod";
import { ConfigError, type ConfigProblem } from "../errors.js";
import { CONFIG_RULES, type SourceOf } from "./resolve.js";
import { configSchema, type Config } from "./schema.js";
import { SETTINGS, type Setting } from "./settings.js";

export interface LoadOptions {
  /** Environment to read overrides from (tests pass their own). */
  env?: NodeJS.ProcessEnv;
  /** Config file path (--config); falls back to FAXBRIDGE_CONFIG. */
  file?: string | undefined;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/**
 * Load the effective configuration: schema defaults, then the optional YAML
 * file, then environment overrides; then the rules across settings
 * (./resolve.ts). Every problem is collected and thrown at once as a
 * ConfigError naming the key, where its value came from (the environment
 * variable, or the file and line), and what was expected.
 */
export function loadConfig(opts: LoadOptions = {}): Readonly<Config> {
  const env = opts.env ?? process.env;
  const problems: ConfigProblem[] = [];
  const sources = new Map<string, string>();
  let raw: JsonObject = {};

  const file = opts.file ?? nonEmpty(env.FAXBRIDGE_CONFIG);
  if (file !== undefined) {
    const fromFile = readYamlFile(file, problems, sources);
    if (fromFile) raw = fromFile;
  }

  for (const setting of SETTINGS) {
    const value = readEnv(env, setting, problems);
    if (value === undefined) continue;
    const parsed = parseEnvValue(setting, value.text);
    if ("error" in parsed) {
      problems.push({ path: setting.path, source: `env ${value.name}`, message: parsed.error });
      continue;
    }
    setPath(raw, setting.path, parsed.value);
    // The variable replaces the whole value: what the file said below it no longer counts.
    for (const key of [...sources.keys()]) if (key.startsWith(`${setting.path}.`)) sources.delete(key);
    sources.set(setting.path, `env ${value.name}`);
  }

  const sourceOf: SourceOf = (path) => {
    for (let p = path; p !== ""; p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "") {
      const s = sources.get(p);
      if (s !== undefined) return s;
    }
    return "default";
  };
  const result = configSchema.safeParse(raw);
  if (!result.success) problems.push(...describeIssues(result.error.issues, raw, sourceOf));
  for (const rule of CONFIG_RULES) {
    // A rule runs whenever the settings it reads are valid, so one run names every problem.
    const part = result.success ? result : configSchema.safeParse(pick(raw, rule.reads));
    if (part.success) problems.push(...rule.check(part.data, sourceOf));
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return deepFreeze(result.data);
}

/** Only the given settings of a raw configuration (the rest takes its defaults when parsed). */
function pick(raw: JsonObject, paths: readonly string[]): JsonObject {
  const out: JsonObject = {};
  for (const path of paths) {
    const value = getPath(raw, path.split("."));
    if (value !== undefined) setPath(out, path, value);
  }
  return out;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === "" ? undefined : v;
}

function readYamlFile(file: string, problems: ConfigProblem[], sources: Map<string, string>): JsonObject | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    problems.push({ path: "(file)", source: `file ${file}`, message: `cannot read the config file (${code})` });
    return undefined;
  }
  // prettyErrors fills in linePos, so each problem can name its line.
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, lineCounter });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const line = e.linePos?.[0]?.line;
      problems.push({ path: "(file)", source: `file ${file}${line ? ` line ${line}` : ""}`, message: `YAML: ${e.message.split("\n")[0]}` });
    }
    return undefined;
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    problems.push({ path: "(file)", source: `file ${file}`, message: "expected a mapping of settings at the top level" });
    return undefined;
  }
  recordLines(doc.contents, "", (path, offset) => sources.set(path, `file ${file} line ${lineCounter.linePos(offset).line}`));
  return value as JsonObject;
}

/** Each setting, list item and mapping in the file with where it starts (a key's own line, a list item's first line). */
function recordLines(node: Node | null, prefix: string, record: (path: string, offset: number) => void): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key === undefined) continue;
      const path = prefix ? `${prefix}.${key}` : key;
      const at = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
      if (at !== undefined) record(path, at);
      recordLines(pair.value as Node | null, path, record);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const path = `${prefix}.${i}`;
      const at = (item as Node | null)?.range?.[0];
      if (at !== undefined) record(path, at);
      recordLines(item as Node | null, path, record);
    });
  }
}

function readEnv(env: NodeJS.ProcessEnv, setting: Setting, problems: ConfigProblem[]): { name: string; text: string } | undefined {
  const direct = env[setting.env];
  if (direct !== undefined && direct !== "") return { name: setting.env, text: direct };
  const fileVar = `${setting.env}_FILE`;
  const path = env[fileVar];
  if (path === undefined || path === "") return undefined;
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    problems.push({ path: setting.path, source: `env ${fileVar}`, message: `cannot read the file it names (${code})` });
    return undefined;
  }
  // A file named on purpose but empty is a mistake (a secret not mounted yet), not "unset": fail closed.
  if (text === "") {
    problems.push({ path: setting.path, source: `env ${fileVar}`, message: `the file it names (${path}) is empty` });
    return undefined;
  }
  return { name: fileVar, text };
}

function parseEnvValue(setting: Setting, text: string): { value: Json } | { error: string } {
  switch (setting.kind) {
    case "string":
      return { value: text };
    case "int": {
      if (!/^-?\d+$/.test(text.trim())) return { error: `expected a whole number, got ${quote(setting, text)}` };
      return { value: Number(text.trim()) };
    }
    case "bool": {
      const t = text.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(t)) return { value: true };
      if (["0", "false", "no", "off"].includes(t)) return { value: false };
      return { error: `expected true or false, got ${quote(setting, text)}` };
    }
    case "list":
      return {
        value: text
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== ""),
      };
    case "json": {
      try {
        return { value: JSON.parse(text) as Json };
      } catch {
        return { error: "expected JSON" };
      }
    }
  }
}

function quote(setting: Setting, text: string): string {
  return setting.secret ? "(a secret value)" : JSON.stringify(text);
}

function setPath(target: JsonObject, path: string, value: Json): void {
  const parts = path.split(".");
  let node: JsonObject = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (next === undefined || next === null || typeof next !== "object" || Array.isArray(next)) {
      const fresh: JsonObject = {};
      node[part] = fresh;
      node = fresh;
    } else {
      node = next;
    }
  }
  node[parts[parts.length - 1] as string] = value;
}

function describeIssues(issues: readonly z.core.$ZodIssue[], raw: JsonObject, sourceOf: SourceOf): ConfigProblem[] {
  const secretPaths = new Set(SETTINGS.filter((s) => s.secret).map((s) => s.path));
  return issues.map((issue) => {
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [];
    const segs = issue.path.map(String);
    const path = segs.join(".") || "(top level)";
    const topPath = SETTINGS.find((s) => path === s.path || path.startsWith(`${s.path}.`))?.path ?? path;
    const source = sourceOf(path);
    if (keys.length > 0) {
      const where = segs.length ? `${path}.` : "";
      return {
        path: keys.map((k) => `${where}${k}`).join(", "),
        source: sourceOf(`${where}${keys[0]}`),
        message: `unknown setting${keys.length > 1 ? "s" : ""} (check the spelling against the README's configuration table)`,
      };
    }
    const value = getPath(raw, segs);
    // A message that quotes the value already (a CIDR's) need not repeat it.
    const shown = secretPaths.has(topPath) || value === undefined || issue.message.includes(JSON.stringify(value)) ? "" : ` (got ${JSON.stringify(value)})`;
    return { path, source, message: `${issue.message}${shown}` };
  });
}

function getPath(obj: Json, segs: readonly string[]): Json | undefined {
  let node: Json | undefined = obj;
  for (const s of segs) {
    if (node === null || node === undefined || typeof node !== "object") return undefined;
    node = Array.isArray(node) ? node[Number(s)] : node[s];
  }
  return node;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** The config as shown by `faxbridge config --print`: secrets replaced. */
export function redactedConfig(config: Config): unknown {
  const copy = JSON.parse(JSON.stringify(config)) as JsonObject;
  for (const s of SETTINGS) {
    if (!s.secret) continue;
    const segs = s.path.split(".");
    const v = getPath(copy, segs);
    const isEmpty = v === "" || (Array.isArray(v) && v.length === 0);
    if (v !== undefined && !isEmpty) setPath(copy, s.path, "[redacted]");
  }
  // A mail or database URL may carry credentials (smtp://user:pass@host): show it without them.
  for (const [path, url] of [
    ["mail.url", config.mail.url],
    ["database.url", config.database.url],
  ] as const) {
    if (!url) continue;
    try {
      const u = new URL(url);
      if (u.password) u.password = "redacted";
      setPath(copy, path, u.toString());
    } catch {
      setPath(copy, path, "[redacted]");
    }
  }
  return copy;
}
