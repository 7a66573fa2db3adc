import { describe, expect, it } from "vitest";
import { hashPassword, parsePasswordHash, verifyPassword } from "../../src/smtp/password.js";

describe("password hashes", () => {
  it("hashes with scrypt in the documented format and verifies", async () => {
    const hash = await hashPassword("s3cret pass");
    expect(hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$/);
    expect(await verifyPassword("s3cret pass", hash)).toBe(true);
    expect(await verifyPassword("s3cret pasS", hash)).toBe(false);
    expect(await hashPassword("s3cret pass")).not.toBe(hash); // salted
  });

  it("rejects malformed or abusive hashes instead of throwing", async () => {
    for (const bad of ["", "plain", "scrypt$16384$8$1$c2FsdA==", "bcrypt$16384$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==", "scrypt$1000$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==", "scrypt$1073741824$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA=="]) {
      expect(parsePasswordHash(bad)).toBeUndefined();
      expect(await verifyPassword("x", bad)).toBe(false);
    }
  });
});
