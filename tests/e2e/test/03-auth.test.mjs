// Dev-token authentication over WebSocket (setAuth, refresh, clearAuth,
// invalid tokens) and HTTP.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import { useServer, makeTempDataDir, mintDevToken } from "../lib/server.mjs";
import { T, fns, scope, uniq, withTimeout, waitUntil, sleep, settle, show, errInfo, CLIENT_VERSION, PKG } from "../lib/client.mjs";

const ctx = useServer({ before, after }, { label: "auth" });
const V = `[${PKG}@${CLIENT_VERSION}]`;

let foreignDir;
before(async () => {
  foreignDir = await makeTempDataDir("connvo-e2e-foreign-");
});
after(async () => {
  if (foreignDir) await fsp.rm(foreignDir, { recursive: true, force: true });
});

/** setAuth with a recorder of onChange calls and fetchToken calls. */
function trackAuth(client, fetchToken) {
  const changes = [];
  const fetches = [];
  const waiters = new Set();
  client.setAuth(
    async (args) => {
      fetches.push(args?.forceRefreshToken ?? false);
      return fetchToken(args);
    },
    (isAuthenticated) => {
      changes.push(isAuthenticated);
      for (const w of [...waiters]) w();
    },
  );
  return {
    changes,
    fetches,
    waitFor(value, timeout = 10_000) {
      return new Promise((resolve, reject) => {
        let timer;
        const check = () => {
          if (changes.includes(value)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`Timed out after ${timeout} ms waiting for onChange(${value}); onChange calls so far: ${show(changes)}, fetchToken(forceRefreshToken) calls: ${show(fetches)}`));
        }, timeout);
        waiters.add(check);
        check();
      });
    },
  };
}

function assertIdentity(who, { subject, email, name, org, role }) {
  assert.ok(who && typeof who === "object", `whoami should be an identity, got ${show(who)}`);
  assert.equal(who.subject, subject, show(who));
  assert.equal(who.email, email, show(who));
  assert.equal(who.name, name, show(who));
  assert.equal(who.orgId, org, show(who));
  assert.equal(who.role, role, show(who));
  assert.equal(typeof who.issuer, "string");
  assert.ok(who.issuer.length > 0, show(who));
  assert.equal(who.tokenIdentifier, `${who.issuer}|${subject}`, show(who));
}

/** The token with its payload's `sub` changed (signature left as is). */
function tamper(token, sub) {
  const [h, p, sig] = token.split(".");
  const payload = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
  payload.sub = sub;
  return [h, Buffer.from(JSON.stringify(payload)).toString("base64url"), sig].join(".");
}

const ALICE = { subject: "alice", email: "alice@example.com", name: "Alice", org: "org_acme", role: "admin" };

test(`${V} WS setAuth(dev token): onChange(true), whoami returns the claims, writes carry the subject`, T, async (t) => {
  const s = scope(t);
  const token = await ctx.server.mintToken(ALICE);
  const c = s.client(ctx.server.url);
  const auth = trackAuth(c, async () => token);
  const who = s.subscribe(c, fns.whoami, {});
  await auth.waitFor(true);
  const identity = await who.waitFor((v) => v !== null, { what: "an identity from whoami" });
  assertIdentity(identity, ALICE);

  const channel = uniq("authored");
  const id = await withTimeout(c.mutation(fns.send, { channel, body: "signed" }), 10_000, "send");
  const list = await withTimeout(c.query(fns.list, { channel }), 10_000, "list");
  assert.equal(list.length, 1);
  assert.equal(list[0]._id, id);
  assert.equal(list[0].author, "alice", `author should be the token subject: ${show(list)}`);
  assert.deepEqual(auth.changes, [true], "onChange called exactly once, with true");
});

test(`${V} WS token refresh: a new token on forceRefreshToken keeps the identity confirmed and is applied`, T, async (t) => {
  const s = scope(t);
  const first = await ctx.server.mintToken({ ...ALICE, name: "Alice One" });
  const second = await ctx.server.mintToken({ ...ALICE, name: "Alice Two" });
  const c = s.client(ctx.server.url);
  const auth = trackAuth(c, async ({ forceRefreshToken }) => (forceRefreshToken ? second : first));
  const who = s.subscribe(c, fns.whoami, {});
  await auth.waitFor(true);
  const refreshed = await who.waitFor((v) => v?.name === "Alice Two", {
    what: "whoami to reflect the refreshed token (name 'Alice Two')",
  });
  assertIdentity(refreshed, { ...ALICE, name: "Alice Two" });
  assert.ok(auth.fetches.includes(true), `fetchToken should have been called with forceRefreshToken: ${show(auth.fetches)}`);
  // The client calls onChange(true) again when it confirms a fresh token
  // (1.28 and 1.48 alike); what matters is that it never reports false.
  assert.ok(auth.changes.length >= 1 && auth.changes.every((x) => x === true), `the refresh must not report a logout: onChange calls ${show(auth.changes)}`);
  assert.equal(c.connectionState().isWebSocketConnected, true);
});

test(`${V} WS scheduled refresh before expiry (short-lived tokens) keeps the identity`, T, async (t) => {
  const s = scope(t);
  let generation = 0;
  const c = s.client(ctx.server.url, { authRefreshTokenLeewaySeconds: 2 });
  // 5 s tokens, refreshed 2 s before expiry: initial, forced, then a scheduled refresh ~3 s later.
  const auth = trackAuth(c, async () => ctx.server.mintToken({ ...ALICE, name: `gen ${++generation}`, ttlSecs: 5 }));
  const who = s.subscribe(c, fns.whoami, {});
  await auth.waitFor(true);
  const v = await who.waitFor((x) => x && Number(x.name?.slice(4)) >= 3, {
    timeout: 15_000,
    what: "the identity of a 3rd (scheduled-refresh) token",
  });
  assert.equal(v.subject, "alice");
  assert.ok(auth.changes.every((x) => x === true), `no logout during refreshes: onChange calls ${show(auth.changes)}, fetches ${show(auth.fetches)}`);
  assert.ok(auth.fetches.length >= 3, `fetchToken calls: ${show(auth.fetches)}`);
});

test(`${V} WS clearAuth(): whoami becomes null live, writes are anonymous again`, T, async (t) => {
  const s = scope(t);
  const token = await ctx.server.mintToken(ALICE);
  const c = s.client(ctx.server.url);
  const auth = trackAuth(c, async () => token);
  const who = s.subscribe(c, fns.whoami, {});
  await auth.waitFor(true);
  await who.waitFor((v) => v?.subject === "alice", { what: "alice" });
  // Let the client's post-confirmation forced refetch finish first; otherwise
  // it sees "no auth" and re-sends the token after our clearAuth (a client race).
  await waitUntil(() => auth.fetches.length >= 2, 5_000, "the client's forced token refetch");
  await sleep(100);

  c.client.clearAuth(); // BaseConvexClient.clearAuth → Authenticate{tokenType:"None"}
  const after = await who.waitFor((v) => v === null, { what: "whoami to become null after clearAuth" });
  assert.equal(after, null);
  const channel = uniq("anon");
  await withTimeout(c.mutation(fns.send, { channel, body: "anon" }), 10_000, "send");
  const list = await withTimeout(c.query(fns.list, { channel }), 10_000, "list");
  assert.equal(list[0].author, undefined, show(list));
});

// Not tested: logging out with `setAuth(() => null)` on an authenticated
// ConvexClient. Both 1.28 and 1.48 pause the socket while fetching, then lose
// the Authenticate{tokenType:"None"} (LocalSyncState.resume() only re-sends a
// token), so the server is never told; clearAuth() above is the working path.

for (const kind of ["garbage", "foreign-key", "tampered"]) {
  test(`${V} WS invalid token (${kind}): onChange(false), queries and writes run as anonymous, no hang`, T, async (t) => {
    const s = scope(t);
    let token;
    if (kind === "garbage") token = "this-is-not-a-jwt";
    else if (kind === "foreign-key") token = await mintDevToken(foreignDir, ALICE);
    else token = tamper(await ctx.server.mintToken({ subject: "bob" }), "alice");

    const c = s.client(ctx.server.url);
    const auth = trackAuth(c, async () => token);
    const who = s.subscribe(c, fns.whoami, {});
    await auth.waitFor(false);
    assert.ok(!auth.changes.includes(true), `an invalid token must never be confirmed: ${show(auth.changes)}`);
    const v = await who.waitFor(() => true, { timeout: 10_000, what: "whoami to answer (as anonymous)" });
    assert.equal(v, null, `whoami must be null for an invalid token, got ${show(v)}`);

    const channel = uniq(`invalid-${kind}`);
    await withTimeout(c.mutation(fns.send, { channel, body: "anon" }), 10_000, "send after auth failure");
    const list = await withTimeout(c.query(fns.list, { channel }), 10_000, "list");
    assert.equal(list.length, 1);
    assert.equal(list[0].author, undefined, `write must be anonymous: ${show(list)}`);
  });
}

test(`${V} HTTP setAuth(token): whoami and authored writes; invalid tokens are rejected; clearAuth`, T, async (t) => {
  const s = scope(t);
  const token = await ctx.server.mintToken(ALICE);
  const http = s.http(ctx.server.url);
  assert.equal(await withTimeout(http.query(fns.whoami, {}), 10_000, "anonymous whoami"), null);

  http.setAuth(token);
  assertIdentity(await withTimeout(http.query(fns.whoami, {}), 10_000, "whoami"), ALICE);
  const channel = uniq("http-auth");
  await withTimeout(http.mutation(fns.send, { channel, body: "signed" }), 10_000, "send");
  const list = await withTimeout(http.query(fns.list, { channel }), 10_000, "list");
  assert.equal(list[0].author, "alice", show(list));

  const bad = {
    garbage: "this-is-not-a-jwt",
    "foreign-key": await mintDevToken(foreignDir, ALICE),
    tampered: tamper(await ctx.server.mintToken({ subject: "bob" }), "alice"),
  };
  for (const [kind, badToken] of Object.entries(bad)) {
    const h = s.http(ctx.server.url, { auth: badToken });
    const r = await settle(h.query(fns.whoami, {}), 10_000, `HTTP whoami with ${kind} token`);
    assert.equal(r.ok, false, `HTTP query with a ${kind} token must fail, got ${show(r.value)}`);
    assert.ok(r.error instanceof Error && r.error.message.length > 0, show(errInfo(r.error)));
    const m = await settle(h.mutation(fns.send, { channel, body: `bad-${kind}` }), 10_000, `HTTP send with ${kind} token`);
    assert.equal(m.ok, false, `HTTP mutation with a ${kind} token must fail`);
  }
  const after = await withTimeout(http.query(fns.list, { channel }), 10_000, "list");
  assert.equal(after.length, 1, `no write with an invalid token: ${show(after)}`);

  http.clearAuth();
  assert.equal(await withTimeout(http.query(fns.whoami, {}), 10_000, "whoami after clearAuth"), null);
});
