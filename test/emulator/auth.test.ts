import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Emulator } from "../../src/emulator/index.js";
import { basic, Client, login, MS_PATH, start, tokenRequest, waitFor } from "./helpers.js";

const JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer";

describe("emulator OAuth", () => {
  let emu: Emulator;
  beforeEach(async () => {
    emu = await start({ accessTokenTtlSeconds: 1, strictAuth: { clientId: "cid", clientSecret: "secret", jwt: "the-jwt" } });
  });
  afterEach(async () => {
    await emu.close();
  });

  it("issues TokenInfo for the JWT grant and rejects wrong credentials", async () => {
    const ok = await tokenRequest(emu, { grant_type: JWT, assertion: "the-jwt" }, basic("cid", "secret"));
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-rate-limit-group")).toBe("auth");
    const info = (await ok.json()) as Record<string, unknown>;
    expect(info).toMatchObject({ token_type: "bearer", expires_in: 1, refresh_token_expires_in: 604800, owner_id: "200000001" });
    expect(typeof info["access_token"]).toBe("string");
    expect(typeof info["session_id"]).toBe("string");

    const badJwt = await tokenRequest(emu, { grant_type: JWT, assertion: "other" }, basic("cid", "secret"));
    expect(badJwt.status).toBe(400);
    expect(await badJwt.json()).toMatchObject({ error: "invalid_grant", errors: [{ errorCode: "OAU-140" }] });
    const badClient = await tokenRequest(emu, { grant_type: JWT, assertion: "the-jwt" }, basic("cid", "nope"));
    expect(await badClient.json()).toMatchObject({ error: "invalid_client" });
    const password = await tokenRequest(emu, { grant_type: "password", username: "x", password: "y" }, basic("cid", "secret"));
    expect(password.status).toBe(400);
    expect(await password.json()).toMatchObject({ error: "unsupported_grant_type" });
  });

  it("refresh tokens are single use; the old access token dies; expired tokens get 401 OAU-128", async () => {
    const res = await tokenRequest(emu, { grant_type: JWT, assertion: "the-jwt" }, basic("cid", "secret"));
    const first = (await res.json()) as { access_token: string; refresh_token: string };
    const refreshed = await tokenRequest(emu, { grant_type: "refresh_token", refresh_token: first.refresh_token }, basic("cid", "secret"));
    expect(refreshed.status).toBe(200);
    const second = (await refreshed.json()) as { access_token: string; refresh_token: string };
    expect(second.refresh_token).not.toBe(first.refresh_token);

    const reuse = await tokenRequest(emu, { grant_type: "refresh_token", refresh_token: first.refresh_token }, basic("cid", "secret"));
    expect(reuse.status).toBe(400);
    expect(await reuse.json()).toMatchObject({ error: "invalid_grant", errors: [{ errorCode: expect.stringMatching(/^OAU-/) }] });

    const old = await new Client(emu, first.access_token).json(MS_PATH);
    expect(old.status).toBe(401);
    expect(old.body).toMatchObject({ errorCode: "OAU-129", errors: [{ errorCode: "OAU-129" }] });

    const client = new Client(emu, second.access_token);
    expect((await client.json(MS_PATH)).status).toBe(200);
    const expired = await waitFor(async () => {
      const r = await client.json(MS_PATH);
      return r.status === 401 ? r : undefined;
    }, 4000);
    expect(expired.body).toMatchObject({ errors: [{ errorCode: "OAU-128", message: "Access token expired" }] });
  });

  it("revoke ends the session (access and refresh token)", async () => {
    const lenient = await start();
    try {
      const t = await login(lenient);
      const revoke = await fetch(`${lenient.url}/restapi/oauth/revoke`, {
        method: "POST",
        headers: { Authorization: basic(), "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: t.access_token }).toString(),
      });
      expect(revoke.status).toBe(200);
      expect((await new Client(lenient, t.access_token).json(MS_PATH)).status).toBe(401);
      const refresh = await tokenRequest(lenient, { grant_type: "refresh_token", refresh_token: t.refresh_token });
      expect(refresh.status).toBe(400);
      const none = await fetch(`${lenient.url}${MS_PATH}`);
      expect(none.status).toBe(401);
    } finally {
      await lenient.close();
    }
  });
});
