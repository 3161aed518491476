// Robustness against misbehaving raw WebSocket clients: each bad input closes
// that socket (with a reason) while the server keeps serving everyone else.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import { RawSocket } from "../lib/rawws.mjs";
import { T, fns, scope, uniq, withTimeout, show, CLIENT_VERSION, PKG } from "../lib/client.mjs";

const ctx = useServer({ before, after }, { label: "robustness" });
const V = `[${PKG}@${CLIENT_VERSION}]`;

/**
 * A well-behaved official client that must keep working while raw sockets
 * misbehave: a subscription plus a write after each bad socket.
 */
async function healthyClient(s) {
  const channel = uniq("bystander");
  const c = s.client(ctx.server.url);
  const sub = s.subscribe(c, fns.list, { channel });
  await sub.waitFor(() => true, { what: "bystander's first result" });
  let n = 0;
  return {
    async check(label) {
      n++;
      const http = s.http(ctx.server.url);
      await withTimeout(http.mutation(fns.send, { channel, body: `after ${label}` }), 10_000, `HTTP write after ${label}`);
      const v = await sub.waitFor((x) => x.length === n, { timeout: 5_000, what: `the bystander subscription to update after ${label}` });
      assert.equal(v.at(-1).body, `after ${label}`);
      assert.equal(c.connectionState().isWebSocketConnected, true, `bystander still connected after ${label}`);
      assert.equal(await ctx.server.health(), 200, `GET /health after ${label}`);
    },
  };
}

/** Opens a raw socket, sends `Connect` (unless `connect:false`), then `bad`; expects the server to close it. */
async function expectClose(s, bad, { connect = true, requireReason = true, label }) {
  const raw = s.track(await RawSocket.open(ctx.server.url));
  if (connect) raw.connect();
  raw.send(bad);
  const { code, reason } = await raw.waitForClose(10_000, `the server to close the socket after ${label}`);
  assert.ok(Number.isInteger(code), `close code after ${label}: ${code}`);
  assert.notEqual(code, 1000, `${label} is an error, not a normal closure (code ${code}, reason ${show(reason)})`);
  if (requireReason) {
    assert.ok(reason.length > 0, `the close after ${label} should carry a reason (code ${code}); messages before it: ${show(raw.messages)}`);
  }
  return { code, reason, messages: raw.messages };
}

test(`${V} malformed JSON closes the socket with a reason; others keep being served`, T, async (t) => {
  const s = scope(t);
  const bystander = await healthyClient(s);
  await expectClose(s, "{this is not json", { label: "malformed JSON" });
  await bystander.check("malformed JSON");
  // Also as the very first frame (before Connect).
  await expectClose(s, "][", { connect: false, label: "malformed JSON before Connect" });
  await bystander.check("malformed JSON before Connect");
});

test(`${V} an unknown message type closes the socket with a reason`, T, async (t) => {
  const s = scope(t);
  const bystander = await healthyClient(s);
  await expectClose(s, JSON.stringify({ type: "Bogus", foo: 1 }), { label: "unknown message type" });
  await bystander.check("unknown message type");
  await expectClose(s, JSON.stringify([1, 2, 3]), { label: "a JSON array frame" });
  await bystander.check("a JSON array frame");
});

test(`${V} ModifyQuerySet with a wrong baseVersion closes the socket with a reason`, T, async (t) => {
  const s = scope(t);
  const bystander = await healthyClient(s);
  const bad = JSON.stringify({
    type: "ModifyQuerySet",
    baseVersion: 5,
    newVersion: 6,
    modifications: [{ type: "Add", queryId: 0, udfPath: "testing/messages:list", args: [{ channel: "x" }], journal: null }],
  });
  const r = await expectClose(s, bad, { label: "ModifyQuerySet with baseVersion 5 on a fresh socket" });
  assert.ok(
    !r.messages.some((m) => m.type === "Transition" && m.modifications?.length),
    `no query results for a rejected ModifyQuerySet: ${show(r.messages)}`,
  );
  await bystander.check("wrong baseVersion");

  // A correct first change followed by a stale one (baseVersion 0 again).
  const raw = s.track(await RawSocket.open(ctx.server.url));
  raw.connect();
  raw.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
  await raw.waitForMessage((m) => m.type === "Transition", { what: "a Transition for the valid ModifyQuerySet" });
  raw.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
  const closed = await raw.waitForClose(10_000, "the server to close after a repeated baseVersion 0");
  assert.ok(closed.reason.length > 0, `reason: ${show(closed)}`);
  await bystander.check("repeated baseVersion");
});

test(`${V} a frame over 1 MiB is rejected with a close; the server stays healthy`, T, async (t) => {
  const s = scope(t);
  const bystander = await healthyClient(s);
  const big = JSON.stringify({
    type: "Mutation",
    requestId: 0,
    udfPath: "testing/messages:send",
    args: [{ channel: uniq("huge"), body: "x".repeat(1024 * 1024 + 1024) }],
  });
  assert.ok(Buffer.byteLength(big) > 1024 * 1024);
  const r = await expectClose(s, big, { requireReason: false, label: "a 1 MiB+ frame" });
  assert.ok(![1000].includes(r.code), `close code ${r.code}`);
  assert.ok(!r.messages.some((m) => m.type === "MutationResponse" && m.success), "the oversized mutation must not succeed");
  await bystander.check("oversized frame");
});

test(`${V} the server stays healthy after all of the above, and a fresh client works`, T, async (t) => {
  const s = scope(t);
  assert.equal(await ctx.server.health(), 200);
  const c = s.client(ctx.server.url);
  const name = uniq("final");
  assert.equal(await withTimeout(c.mutation(fns.counterIncrement, { name }), 10_000, "increment"), 1);
  assert.ok(ctx.server.running, "the server process is still running");
});
