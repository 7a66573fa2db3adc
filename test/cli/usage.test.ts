import { beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "../helpers/build.js";
import { cli } from "./helpers.js";

describe("faxbridge usage and --help", () => {
  beforeAll(async () => {
    await ensureBuilt();
  }, 120_000);

  it("lists every command, and every command explains itself with --help", async () => {
    const top = await cli(["--help"], {});
    expect(top.code).toBe(0);
    const commands = ["run", "doctor", "queue", "inbound", "send", "config", "emulator", "hash-password"];
    for (const c of commands) expect(top.stdout).toMatch(new RegExp(`^  ${c} `, "m"));
    const helps = await Promise.all(commands.map((c) => cli([c, "--help"], {})));
    helps.forEach((h, i) => {
      expect({ command: commands[i], code: h.code, stderr: h.stderr }).toEqual({ command: commands[i], code: 0, stderr: "" });
      expect(h.stdout).toContain(`usage: faxbridge ${commands[i] ?? ""}`);
    });
    const none = await cli([], {});
    expect(none.code).toBe(2);
  });
});
