// Pagination: HTTP paging by continueCursor, a live first page, invalid cursors.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import { T, fns, scope, uniq, withTimeout, settle, show, errInfo, CLIENT_VERSION, PKG } from "../lib/client.mjs";

const ctx = useServer({ before, after }, { label: "pagination" });
const V = `[${PKG}@${CLIENT_VERSION}]`;

/** Inserts `n` messages m00..m{n-1} in order; returns their ids. */
async function insertMessages(client, channel, n) {
  const ids = await withTimeout(
    Promise.all(Array.from({ length: n }, (_, i) => client.mutation(fns.send, { channel, body: `m${String(i).padStart(2, "0")}` }))),
    15_000,
    `${n} inserts`,
  );
  assert.equal(new Set(ids).size, n);
  return ids;
}

const bodies = (page) => page.map((m) => m.body);
const range = (from, toExclusive) =>
  Array.from({ length: from - toExclusive }, (_, i) => `m${String(from - 1 - i).padStart(2, "0")}`);

test(`${V} HTTP: 25 messages page as 10, 10, 5 (newest first) by continueCursor`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("pages");
  const c = s.client(ctx.server.url);
  const http = s.http(ctx.server.url);
  const ids = await insertMessages(c, channel, 25);
  // Noise in another channel must not leak into the pages.
  await withTimeout(c.mutation(fns.send, { channel: `${channel}-other`, body: "other" }), 10_000, "noise");

  const page = (cursor) =>
    withTimeout(http.query(fns.paginate, { channel, paginationOpts: { numItems: 10, cursor } }), 10_000, `page at ${show(cursor)}`);

  const p1 = await page(null);
  assert.equal(typeof p1.continueCursor, "string", show(p1));
  assert.equal(p1.isDone, false, `page 1 isDone: ${show(p1)}`);
  assert.deepEqual(bodies(p1.page), range(25, 15), "page 1 = m24..m15");

  const p2 = await page(p1.continueCursor);
  assert.equal(p2.isDone, false, `page 2 isDone: ${show({ ...p2, page: bodies(p2.page) })}`);
  assert.deepEqual(bodies(p2.page), range(15, 5), "page 2 = m14..m05");

  const p3 = await page(p2.continueCursor);
  assert.deepEqual(bodies(p3.page), range(5, 0), "page 3 = m04..m00");
  assert.equal(p3.isDone, true, `page 3 isDone: ${show({ ...p3, page: bodies(p3.page) })}`);
  assert.equal(typeof p3.continueCursor, "string", "continueCursor is a string even when done");

  const all = [...p1.page, ...p2.page, ...p3.page];
  assert.deepEqual(all.map((m) => m._id), [...ids].reverse(), "the pages cover every message exactly once");
  assert.ok(all.every((m) => m.channel === channel));

  // Paging past the end stays done and empty.
  const p4 = await page(p3.continueCursor);
  assert.deepEqual(p4.page, [], show(p4));
  assert.equal(p4.isDone, true);

  // The same first page over WS equals the HTTP one.
  const wsP1 = await withTimeout(c.query(fns.paginate, { channel, paginationOpts: { numItems: 10, cursor: null } }), 10_000, "WS page 1");
  assert.deepEqual(wsP1.page, p1.page);
});

test(`${V} WS: the live first page updates when a message is inserted (newest first, gapless)`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("live-page");
  const c = s.client(ctx.server.url);
  const other = s.client(ctx.server.url);
  await insertMessages(c, channel, 25);

  const sub = s.subscribe(c, fns.paginate, { channel, paginationOpts: { numItems: 10, cursor: null } });
  const first = await sub.waitFor((v) => Array.isArray(v?.page), { what: "the first page" });
  assert.deepEqual(bodies(first.page), range(25, 15));
  assert.equal(first.isDone, false);

  // Insert from another client: the subscription must update by itself.
  const newId = await withTimeout(other.mutation(fns.send, { channel, body: "newest" }), 10_000, "insert");
  const updated = await sub.waitFor((v) => v?.page?.[0]?.body === "newest", {
    timeout: 5_000,
    what: "the live first page to show the new message on top",
  });
  assert.equal(updated.page[0]._id, newId);
  assert.deepEqual(
    bodies(updated.page.slice(1)),
    bodies(first.page).slice(0, updated.page.length - 1),
    "the rest of the page keeps its order",
  );
  // The page keeps its end (query journal), so it grows instead of shifting
  // an item onto page 2.
  assert.equal(
    updated.page.length,
    11,
    `with the journal the first page grows to 11 items (got ${updated.page.length}: ${show(bodies(updated.page))})`,
  );
  assert.deepEqual(bodies(updated.page), ["newest", ...range(25, 15)]);

  // Own write: read-your-writes on the paginated subscription too.
  await withTimeout(c.mutation(fns.send, { channel, body: "newest2" }), 10_000, "own insert");
  assert.equal(sub.latest.page[0].body, "newest2", `read-your-writes on the page: ${show(bodies(sub.latest.page))}`);
});

test(`${V} an invalid cursor is an error mentioning InvalidCursor (HTTP and WS)`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("badcursor");
  const http = s.http(ctx.server.url);
  const c = s.client(ctx.server.url);
  await insertMessages(c, channel, 3);

  for (const cursor of ["definitely-not-a-cursor", "AAAA"]) {
    const r = await settle(
      http.query(fns.paginate, { channel, paginationOpts: { numItems: 2, cursor } }),
      10_000,
      `HTTP page with cursor ${cursor}`,
    );
    assert.equal(r.ok, false, `cursor ${show(cursor)} must be rejected, got ${show(r.value)}`);
    assert.match(r.error.message, /InvalidCursor/, `HTTP error should mention InvalidCursor: ${show(errInfo(r.error))}`);
  }

  // A cursor from another query (another channel) is invalid too.
  const p = await withTimeout(http.query(fns.paginate, { channel, paginationOpts: { numItems: 1, cursor: null } }), 10_000, "page");
  const foreign = await settle(
    http.query(fns.paginate, { channel: `${channel}-x`, paginationOpts: { numItems: 1, cursor: p.continueCursor } }),
    10_000,
    "cursor of another query",
  );
  if (foreign.ok) {
    // Acceptable only if the server treats it as a position in the other range; it must not leak this channel's data.
    assert.ok(foreign.value.page.every((m) => m.channel === `${channel}-x`), show(foreign.value));
  } else {
    assert.match(foreign.error.message, /InvalidCursor/, show(errInfo(foreign.error)));
  }

  const sub = s.subscribe(c, fns.paginate, { channel, paginationOpts: { numItems: 2, cursor: "definitely-not-a-cursor" } });
  const err = await sub.waitForError({ timeout: 10_000 });
  assert.match(err.message, /InvalidCursor/, `WS error should mention InvalidCursor: ${show(errInfo(err))}`);
});
