import { describe, expect, it } from "vitest";
import { createCidrMatcher, isLocalClient, isLoopback } from "../../src/net/cidr.js";

describe("CIDR matcher", () => {
  const match = createCidrMatcher(["10.0.0.0/8", "192.168.1.7", "fd00::/8", "2001:db8::1/128"]);

  it.each([
    ["10.1.2.3", true],
    ["11.0.0.1", false],
    ["192.168.1.7", true],
    ["192.168.1.8", false],
    ["::ffff:10.9.9.9", true],
    ["::FFFF:192.168.1.7", true],
    ["::ffff:11.0.0.1", false],
    ["fd12:3456::1", true],
    ["fe80::1", false],
    ["2001:db8::1", true],
    ["2001:db8::2", false],
    ["not an ip", false],
  ])("%s → %s", (ip, expected) => {
    expect(match(ip)).toBe(expected);
  });

  it("knows loopback in every form", () => {
    expect(isLoopback("127.0.0.1")).toBe(true);
    expect(isLoopback("127.8.9.10")).toBe(true);
    expect(isLoopback("::1")).toBe(true);
    expect(isLoopback("::ffff:127.0.0.1")).toBe(true);
    expect(isLoopback("10.0.0.1")).toBe(false);
  });

  it("calls a client local only on loopback and from the address it connects to", () => {
    expect(isLocalClient("127.0.0.1", "127.0.0.1")).toBe(true);
    expect(isLocalClient("::1", "::1")).toBe(true);
    expect(isLocalClient("::ffff:127.0.0.1", "127.0.0.1")).toBe(true);
    // Another loopback address, or the host's own network address, is a network client.
    expect(isLocalClient("127.0.0.2", "127.0.0.1")).toBe(false);
    expect(isLocalClient("127.0.0.1", "::1")).toBe(false);
    expect(isLocalClient("192.0.2.10", "192.0.2.10")).toBe(false);
    expect(isLocalClient("10.0.0.5", "127.0.0.1")).toBe(false);
  });

  it("matches nothing with an empty list and refuses invalid entries", () => {
    expect(createCidrMatcher([])("127.0.0.1")).toBe(false);
    for (const bad of ["10.0.0.0/33", "fd00::/129", "10.0.0/8", "example.com", "10.0.0.0/8/1", "10.0.0.0/x"]) {
      expect(() => createCidrMatcher([bad])).toThrow(/is not an IPv4 or IPv6 CIDR/);
    }
  });
});
