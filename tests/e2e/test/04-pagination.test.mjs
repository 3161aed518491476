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

  const summary = (p) => show({ n: p.page.length, isDone: p.isDone, bodies: bodies(p.page) });
  const p1 = await page(null);
  assert.equal(typeof p1.continueCursor, "string", show(p1));
  assert.equal(p1.page.length, 10, `page 1 size: ${summary(p1)}`);
  assert.equal(p1.isDone, false, `page 1 isDone: ${summary(p1)}`);

  const p2 = await page(p1.continueCursor);
  assert.equal(p2.page.length, 10, `page 2 size: ${summary(p2)}`);
  assert.equal(p2.isDone, false, `page 2 isDone: ${summary(p2)}`);

  const p3 = await page(p2.continueCursor);
  assert.equal(p3.page.length, 5, `page 3 size: ${summary(p3)}`);
  assert.equal(p3.isDone, true, `page 3 isDone: ${summary(p3)}`);
  assert.equal(typeof p3.continueCursor, "string", "continueCursor is a string even when done");

  const all = [...p1.page, ...p2.page, ...p3.page];
  assert.ok(all.every((m) => m.channel === channel));
  assert.deepEqual([...all.map((m) => m._id)].sort(), [...ids].sort(), "the pages cover every message exactly once");
  // Pages are the server's own index order, reversed (desc vs. list's asc).
  const listed = await withTimeout(http.query(fns.list, { channel }), 10_000, "list");
  assert.deepEqual(bodies(all), bodies(listed).reverse(), "paginate (desc) mirrors list (asc)");
  for (const [a, b] of all.slice(0, -1).map((m, i) => [m, all[i + 1]])) {
    assert.ok(a._creationTime >= b._creationTime, `newest first: ${a.body}@${a._creationTime} before ${b.body}@${b._creationTime}`);
  }

  // Paging past the end stays done and empty.
  const p4 = await page(p3.continueCursor);
  assert.deepEqual(p4.page, [], show(p4));
  assert.equal(p4.isDone, true);

  // The same first page over WS equals the HTTP one.
  const wsP1 = await withTimeout(c.query(fns.paginate, { channel, paginationOpts: { numItems: 10, cursor: null } }), 10_000, "WS page 1");
  assert.deepEqual(wsP1.page, p1.page);

  // Creation order (checked last): the 25 inserts ran one after another on
  // one socket, so newest-first must be exactly m24..m00.
  const dupTimes = listed.filter((m, i) => i > 0 && m._creationTime === listed[i - 1]._creationTime).length;
  assert.deepEqual(
    [bodies(p1.page), bodies(p2.page), bodies(p3.page)],
    [range(25, 15), range(15, 5), range(5, 0)],
    `pages in creation order (newest first); ${dupTimes} of 25 documents share their _creationTime with the previous one`,
  );
  assert.deepEqual(bodies(listed), range(25, 0).reverse(), "list returns creation order");
});

test(`${V} WS: the live first page updates when a message is inserted (newest first, gapless)`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("live-page");
  const c = s.client(ctx.server.url);
  const other = s.client(ctx.server.url);
  await insertMessages(c, channel, 25);

  const sub = s.subscribe(c, fns.paginate, { channel, paginationOpts: { numItems: 10, cursor: null } });
  const first = await sub.waitFor((v) => Array.isArray(v?.page), { what: "the first page" });
  assert.equal(first.page.length, 10, show(bodies(first.page)));
  assert.equal(first.isDone, false);
  const httpFirst = await withTimeout(
    s.http(ctx.server.url).query(fns.paginate, { channel, paginationOpts: { numItems: 10, cursor: null } }),
    10_000,
    "HTTP first page",
  );
  assert.deepEqual(first.page, httpFirst.page, "live first page equals the HTTP one");

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
  assert.deepEqual(bodies(updated.page), ["newest", ...bodies(first.page)]);

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
