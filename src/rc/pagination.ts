/**
 * RingCentral list pagination: follow `navigation.nextPage.uri` (re-based onto
 * the configured server) until there is none, a page comes back empty, or a
 * page repeats.
 */
import type { z } from "zod";
import type { Called, Rest } from "./endpoints.js";

interface Page<T> {
  records: T[];
  navigation?: { nextPage?: { uri: string } | undefined } | undefined;
}

export async function* paginate<S extends z.ZodType<Page<unknown>>>(
  rest: Rest,
  op: Called,
  first: URL,
  schema: S,
): AsyncGenerator<z.output<S>["records"][number]> {
  let url: URL | undefined = first;
  const visited = new Set<string>();
  while (url !== undefined) {
    visited.add(url.toString());
    const page: Page<unknown> = await rest.json(op, schema, { url });
    for (const r of page.records) yield r as z.output<S>["records"][number];
    const next = page.navigation?.nextPage?.uri;
    url = undefined;
    if (next !== undefined && page.records.length > 0) {
      const candidate = rest.urls.rebase(next);
      if (!visited.has(candidate.toString())) url = candidate;
    }
  }
}
