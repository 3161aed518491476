// Subscriptions, read-your-writes, fan-out, and HTTP/WS agreement.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import { T, fns, scope, uniq, withTimeout, sleep, show, makeFunctionReference, CLIENT_VERSION, PKG } from "../lib/client.mjs";

const ctx = useServer({ before, after }, { label: "sync" });

test(`[${PKG}@${CLIENT_VERSION}] onUpdate + mutation on the same client: update arrived when the mutation resolves; a second client sees it`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("ryw");
  const a = s.client(ctx.server.url);
  const b = s.client(ctx.server.url);
  const subA = s.subscribe(a, fns.list, { channel }, "A list");
  const subB = s.subscribe(b, fns.list, { channel }, "B list");

  assert.deepEqual(await subA.waitFor(() => true, { what: "A's first result" }), []);
  assert.deepEqual(await subB.waitFor(() => true, { what: "B's first result" }), []);

  const updatesBefore = subA.values.length;
  const id = await withTimeout(a.mutation(fns.send, { channel, body: "hello" }), 10_000, "A mutation send");
  assert.equal(typeof id, "string", `send should return an id string, got ${show(id)}`);
  assert.ok(id.length > 0);

  // Read-your-writes: no waiting here. The Transition that resolved the
  // mutation promise has already run A's onUpdate callback.
  assert.ok(
    subA.values.length > updatesBefore,
    `A's onUpdate had not fired by the time the mutation resolved; ${subA.describe()}`,
  );
  const latest = subA.latest;
  assert.equal(latest.length, 1, `A should see its own write: ${show(latest)}`);
  assert.equal(latest[0]._id, id);
  assert.equal(latest[0].body, "hello");
  assert.equal(latest[0].channel, channel);
  assert.equal(typeof latest[0]._creationTime, "number");
  assert.ok(latest[0]._creationTime > 1.5e12 && latest[0]._creationTime < 1e13, `_creationTime should be ms since epoch: ${latest[0]._creationTime}`);
  assert.equal(latest[0].author, undefined, "anonymous sends have no author");

  // Fan-out to the other client.
  const seenByB = await subB.waitFor((v) => v.length === 1, { timeout: 5_000, what: "B to see A's write" });
  assert.deepEqual(seenByB, latest);

  // And the other way round.
  const id2 = await withTimeout(b.mutation(fns.send, { channel, body: "world" }), 10_000, "B mutation send");
  assert.equal(subB.latest.length, 2, `B should see its own write at once: ${subB.describe()}`);
  const seenByA = await subA.waitFor((v) => v.length === 2, { timeout: 5_000, what: "A to see B's write" });
  assert.deepEqual(seenByA.map((m) => m._id), [id, id2], "creation order");
  assert.deepEqual(seenByA.map((m) => m.body), ["hello", "world"]);
  assert.ok(seenByA[0]._creationTime <= seenByA[1]._creationTime);
});

test(`[${PKG}@${CLIENT_VERSION}] concurrent mutations on one client run in order and each result is reflected`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("order");
  const c = s.client(ctx.server.url);
  const sub = s.subscribe(c, fns.list, { channel });
  await sub.waitFor(() => true, { what: "first result" });

  const bodies = ["m0", "m1", "m2", "m3", "m4"];
  const ids = await withTimeout(
    Promise.all(bodies.map((body) => c.mutation(fns.send, { channel, body }))),
    10_000,
    "5 concurrent mutations",
  );
  assert.equal(new Set(ids).size, 5, `distinct ids: ${show(ids)}`);
  const list = sub.latest;
  assert.deepEqual(list.map((m) => m.body), bodies, "all five reflected, in request order");
  assert.deepEqual(list.map((m) => m._id), ids);

  const counter = uniq("ctr");
  const results = await withTimeout(
    Promise.all([1, 2, 3, 4].map(() => c.mutation(fns.counterIncrement, { name: counter }))),
    10_000,
    "4 concurrent increments",
  );
  assert.deepEqual(results, [1, 2, 3, 4], "WebSocket mutations of one client run one at a time in requestId order");
});

test(`[${PKG}@${CLIENT_VERSION}] unsubscribe stops callbacks; re-subscribing gets the current value`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("unsub");
  const c = s.client(ctx.server.url);
  const sub = s.subscribe(c, fns.list, { channel });
  await sub.waitFor(() => true, { what: "first result" });
  sub.unsubscribe();
  const n = sub.values.length;
  await withTimeout(c.mutation(fns.send, { channel, body: "after-unsub" }), 10_000, "mutation");
  await sleep(300);
  assert.equal(sub.values.length, n, `no callback after unsubscribe; ${sub.describe()}`);

  const again = s.subscribe(c, fns.list, { channel });
  const v = await again.waitFor((x) => x.length === 1, { what: "current value on re-subscribe" });
  assert.equal(v[0].body, "after-unsub");
});

test(`[${PKG}@${CLIENT_VERSION}] ConvexHttpClient query/mutation/action, and HTTP and WS results agree`, T, async (t) => {
  const s = scope(t);
  const url = ctx.server.url;
  const channel = uniq("http");
  const http = s.http(url);
  const c = s.client(url);
  const sub = s.subscribe(c, fns.list, { channel });
  await sub.waitFor(() => true, { what: "first result" });

  const id1 = await withTimeout(http.mutation(fns.send, { channel, body: "one" }), 10_000, "HTTP mutation");
  assert.equal(typeof id1, "string");
  const id2 = await withTimeout(http.mutation(fns.send, { channel, body: "two" }), 10_000, "HTTP mutation");

  const viaWs = await sub.waitFor((v) => v.length === 2, { timeout: 5_000, what: "HTTP writes to reach the WS subscription" });
  assert.deepEqual(viaWs.map((m) => m._id), [id1, id2]);

  const viaHttp = await withTimeout(http.query(fns.list, { channel }), 10_000, "HTTP query");
  assert.deepEqual(viaHttp, viaWs, "HTTP query and WS subscription return identical documents");

  const oneShot = await withTimeout(c.query(fns.list, { channel }), 10_000, "WS one-shot query");
  assert.deepEqual(oneShot, viaWs);

  // Counter through both transports.
  const name = uniq("counter");
  assert.equal(await withTimeout(http.query(fns.counterGet, { name }), 10_000, "counter get"), 0);
  assert.equal(await withTimeout(http.mutation(fns.counterIncrement, { name }), 10_000, "inc"), 1);
  assert.equal(await withTimeout(c.mutation(fns.counterIncrement, { name }), 10_000, "inc"), 2);
  assert.equal(await withTimeout(http.mutation(fns.counterIncrement, { name }), 10_000, "inc"), 3);
  assert.equal(await withTimeout(http.query(fns.counterGet, { name }), 10_000, "counter get"), 3);
  assert.equal(await withTimeout(c.query(fns.counterGet, { name }), 10_000, "counter get"), 3);

  // Action over HTTP and WS.
  assert.equal(await withTimeout(http.action(fns.echo, { value: "hi" }), 10_000, "HTTP action"), "hi");
  assert.deepEqual(
    await withTimeout(c.action(fns.echo, { value: { a: [1, "x", null, true] } }), 10_000, "WS action"),
    { a: [1, "x", null, true] },
  );
});

test(`[${PKG}@${CLIENT_VERSION}] function references: anyApi, makeFunctionReference and the .js form all reach the same function`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("refs");
  const http = s.http(ctx.server.url);
  const c = s.client(ctx.server.url);
  await withTimeout(c.mutation(makeFunctionReference("testing/messages:send"), { channel, body: "a" }), 10_000, "send via makeFunctionReference");
  await withTimeout(http.mutation(makeFunctionReference("testing/messages.js:send"), { channel, body: "b" }), 10_000, "send via .js path (HTTP)");
  await withTimeout(c.mutation(makeFunctionReference("testing/messages.js:send"), { channel, body: "c" }), 10_000, "send via .js path (WS)");
  const list = await withTimeout(http.query(fns.list, { channel }), 10_000, "list");
  assert.deepEqual(list.map((m) => m.body), ["a", "b", "c"]);
});
