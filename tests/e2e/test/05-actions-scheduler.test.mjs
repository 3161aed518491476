// Actions (value round trips, runMutation) and the scheduler.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import { T, fns, scope, uniq, withTimeout, show, CLIENT_VERSION, PKG } from "../lib/client.mjs";

const ctx = useServer({ before, after }, { label: "actions" });
const V = `[${PKG}@${CLIENT_VERSION}]`;

test(`${V} action echo: bigint ($integer) round trip over WS and HTTP`, T, async (t) => {
  const s = scope(t);
  const c = s.client(ctx.server.url);
  const http = s.http(ctx.server.url);
  for (const [name, client] of [
    ["WS", c],
    ["HTTP", http],
  ]) {
    const r = await withTimeout(client.action(fns.echo, { value: BigInt(5) }), 10_000, `${name} echo 5n`);
    assert.equal(typeof r, "bigint", `${name}: echo(5n) should come back as a bigint, got ${show(r)} (${typeof r})`);
    assert.equal(r, 5n);
    const n = await withTimeout(client.action(fns.echo, { value: 5 }), 10_000, `${name} echo 5`);
    assert.equal(typeof n, "number", `${name}: echo(5) stays a float64 number`);
    assert.equal(n, 5);
  }
});

test(`${V} action echo: the full value model round-trips (int64 extremes, bytes, special floats, nesting)`, T, async (t) => {
  const s = scope(t);
  const c = s.client(ctx.server.url);
  const http = s.http(ctx.server.url);
  const bytes = new Uint8Array([0, 1, 2, 250, 255]).buffer;
  const value = {
    big: [0n, -1n, 9223372036854775807n, -9223372036854775808n],
    floats: [0, 1.5, -2.25, 1e300, Number.MAX_SAFE_INTEGER],
    special: [NaN, Infinity, -Infinity, -0],
    str: "héllo ✓ \"quoted\" \n tab\t",
    bool: [true, false],
    nil: null,
    bytes,
    nested: { a: { b: [{ c: 1n }] }, "key with spaces": "ok" },
  };
  const problems = [];
  for (const [name, client] of [
    ["WS", c],
    ["HTTP", http],
  ]) {
    const r = await withTimeout(client.action(fns.echo, { value }), 10_000, `${name} echo value`);
    // Check every part, then report all mismatches at once.
    const check = (label, fn) => {
      try {
        fn();
      } catch (e) {
        problems.push(`${name} ${label}: ${e.message.split("\n")[0]} (got ${show(label.split(".").reduce((o, k) => o?.[k], r))})`);
      }
    };
    check("big", () => assert.deepEqual(r.big, value.big));
    check("floats", () => assert.deepEqual(r.floats, value.floats));
    check("special", () => {
      assert.ok(Number.isNaN(r.special[0]), "NaN");
      assert.equal(r.special[1], Infinity);
      assert.equal(r.special[2], -Infinity);
      assert.ok(Object.is(r.special[3], -0), "-0 must stay -0");
    });
    check("str", () => assert.equal(r.str, value.str));
    check("bool", () => assert.deepEqual(r.bool, [true, false]));
    check("nil", () => assert.equal(r.nil, null));
    check("bytes", () => {
      assert.ok(r.bytes instanceof ArrayBuffer, "bytes should be an ArrayBuffer");
      assert.deepEqual([...new Uint8Array(r.bytes)], [0, 1, 2, 250, 255]);
    });
    check("nested", () => assert.deepEqual(r.nested, value.nested));
  }
  assert.deepEqual(problems, [], `value round-trip mismatches:\n  ${problems.join("\n  ")}`);
});

test(`${V} action sendViaMutation: the message appears in a live subscription`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("action-send");
  const c = s.client(ctx.server.url);
  const watcher = s.client(ctx.server.url);
  const sub = s.subscribe(watcher, fns.list, { channel });
  await sub.waitFor(() => true, { what: "first result" });

  const id = await withTimeout(c.action(fns.sendViaMutation, { channel, body: "from action" }), 10_000, "WS action");
  assert.equal(typeof id, "string", show(id));
  const list = await sub.waitFor((v) => v.length === 1, { timeout: 5_000, what: "the action's message" });
  assert.equal(list[0]._id, id);
  assert.equal(list[0].body, "from action");

  const http = s.http(ctx.server.url);
  const id2 = await withTimeout(http.action(fns.sendViaMutation, { channel, body: "from http action" }), 10_000, "HTTP action");
  const list2 = await sub.waitFor((v) => v.length === 2, { timeout: 5_000, what: "the HTTP action's message" });
  assert.deepEqual(list2.map((m) => m._id), [id, id2]);
});

test(`${V} scheduler: scheduleSend(delayMs 200) appears in a live subscription after the delay, within 5 s`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("scheduled");
  const c = s.client(ctx.server.url);
  const sub = s.subscribe(c, fns.list, { channel });
  await sub.waitFor(() => true, { what: "first result" });

  const t0 = Date.now();
  const jobId = await withTimeout(c.mutation(fns.scheduleSend, { channel, body: "later", delayMs: 200 }), 10_000, "scheduleSend");
  assert.equal(typeof jobId, "string", `scheduleSend returns a job id string: ${show(jobId)}`);
  assert.ok(jobId.length > 0);
  const resolvedAt = Date.now();
  if (resolvedAt - t0 < 150) {
    assert.deepEqual(sub.latest, [], "the message must not exist before its delay has passed");
  }
  const list = await sub.waitFor((v) => v.length === 1, { timeout: 5_000, what: "the scheduled message" });
  const elapsed = Date.now() - t0;
  assert.equal(list[0].body, "later");
  assert.equal(list[0].channel, channel);
  assert.ok(elapsed >= 190, `the message appeared after ${elapsed} ms, before the 200 ms delay`);
  assert.ok(list[0]._creationTime >= t0 + 150, `created ${list[0]._creationTime - t0} ms after scheduling`);

  // Several jobs with different delays run in delay order.
  await withTimeout(
    Promise.all([
      c.mutation(fns.scheduleSend, { channel, body: "third", delayMs: 600 }),
      c.mutation(fns.scheduleSend, { channel, body: "second", delayMs: 300 }),
      c.mutation(fns.scheduleSend, { channel, body: "now", delayMs: 0 }),
    ]),
    10_000,
    "three scheduleSend",
  );
  const all = await sub.waitFor((v) => v.length === 4, { timeout: 5_000, what: "all scheduled messages" });
  assert.deepEqual(all.map((m) => m.body), ["later", "now", "second", "third"]);
});
