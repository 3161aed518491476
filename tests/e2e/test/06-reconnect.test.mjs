// Reconnection: server killed (SIGKILL) and restarted on the same data dir and
// port while clients are subscribed or have mutations in flight; graceful
// SIGTERM; mutation de-duplication by (sessionId, requestId).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import {
  T,
  fns,
  scope,
  uniq,
  withTimeout,
  waitUntil,
  show,
  makeSpySocket,
  CLIENT_VERSION,
  PKG,
} from "../lib/client.mjs";

const ctx = useServer({ before, after }, { label: "reconnect" });
const V = `[${PKG}@${CLIENT_VERSION}]`;

async function ensureRunning() {
  if (!ctx.server.running) await ctx.server.restart();
}

function frameSummary(spy) {
  return show(
    spy.sent.map(({ socket, msg }) => `${spy.sockets.indexOf(socket)}>${msg.type}${msg.requestId !== undefined ? "#" + msg.requestId : ""}`),
    2000,
  ) + " / received " + show(
    spy.received.map(({ socket, msg }) => `${spy.sockets.indexOf(socket)}<${msg.type}${msg.requestId !== undefined ? "#" + msg.requestId : ""}`),
    2000,
  );
}

test(`${V} SIGKILL + restart on the same port: the subscription (and auth) resumes and receives new updates`, T, async (t) => {
  await ensureRunning();
  const s = scope(t);
  const server = ctx.server;
  const port = server.port;
  const channel = uniq("resume");
  const token = await server.mintToken({ subject: "carol", email: "carol@example.com" });

  const c = s.client(server.url);
  const changes = [];
  c.setAuth(async () => token, (ok) => changes.push(ok));
  const sub = s.subscribe(c, fns.list, { channel });
  const who = s.subscribe(c, fns.whoami, {});
  await who.waitFor((v) => v?.subject === "carol", { what: "carol before the kill" });
  await sub.waitFor(() => true, { what: "first result" });
  const id1 = await withTimeout(c.mutation(fns.send, { channel, body: "before" }), 10_000, "send before kill");
  assert.equal(sub.latest.length, 1);

  const exit = await server.kill();
  assert.equal(exit.signal, "SIGKILL");
  await waitUntil(() => !c.connectionState().isWebSocketConnected, 5_000, "the client notices the dropped socket");

  await server.restart();
  assert.equal(server.port, port, "restarted on the same port");

  const http = s.http(server.url);
  const id2 = await withTimeout(http.mutation(fns.send, { channel, body: "after" }), 10_000, "HTTP send after restart");
  const list = await sub.waitFor((v) => v.length === 2, {
    timeout: 14_000,
    what: "the resumed subscription to receive the post-restart message",
  });
  assert.deepEqual(list.map((m) => m._id), [id1, id2], "data written before the kill survived the restart");
  assert.deepEqual(list.map((m) => m.body), ["before", "after"]);
  assert.equal(list[0].author, "carol");
  assert.equal(c.connectionState().isWebSocketConnected, true);

  // The client re-authenticated on the new socket.
  assert.equal(who.latest?.subject, "carol", `identity after reconnect: ${who.describe()}`);
  assert.ok(!changes.includes(false), `no auth failure across the restart: ${show(changes)}`);

  // And the client can write again (read-your-writes on the new socket).
  await withTimeout(c.mutation(fns.send, { channel, body: "again" }), 10_000, "send after reconnect");
  assert.deepEqual(sub.latest.map((m) => m.body), ["before", "after", "again"]);
  assert.equal(sub.latest[2].author, "carol");
});

test(`${V} mutations in flight when the server is SIGKILLed are applied exactly once after the restart`, T, async (t) => {
  await ensureRunning();
  const s = scope(t);
  const server = ctx.server;
  const name = uniq("inflight");
  const { SpySocket, spy } = makeSpySocket();
  const c = s.client(server.url, { webSocketConstructor: SpySocket });
  assert.equal(await withTimeout(c.query(fns.counterGet, { name }), 10_000, "counter get (connected)"), 0);

  let sent = 0;
  let allSent;
  const allSentP = new Promise((r) => (allSent = r));
  spy.onSend = (msg) => {
    if (msg.type === "Mutation" && msg.args?.[0]?.name === name && ++sent === 3) allSent();
  };
  const issued = 3;
  const promises = Array.from({ length: issued }, () => c.mutation(fns.counterIncrement, { name }));
  await withTimeout(allSentP, 5_000, "the 3 Mutation frames to be sent");
  await new Promise((r) => setImmediate(r)); // let ws hand the frames to the kernel
  await server.kill();
  await server.restart();

  const results = await withTimeout(Promise.all(promises), 15_000, `the in-flight mutations to resolve after restart (${frameSummary(spy)})`);
  assert.deepEqual(results, [1, 2, 3], `each increment applied once, in order; frames: ${frameSummary(spy)}`);
  // A further increment on the same socket runs after any re-sent ones.
  const next = await withTimeout(c.mutation(fns.counterIncrement, { name }), 10_000, "follow-up increment");
  assert.equal(next, issued + 1, `counter after ${issued} in-flight + 1 increments; frames: ${frameSummary(spy)}`);
  const http = s.http(server.url);
  assert.equal(await withTimeout(http.query(fns.counterGet, { name }), 10_000, "counter get"), issued + 1);
});

for (const deliverResponse of [false, true]) {
  const what = deliverResponse
    ? "MutationResponse delivered, Transition lost"
    : "MutationResponse lost";
  test(`${V} server committed, then SIGKILL (${what}): the re-sent mutation is de-duplicated after restart`, T, async (t) => {
    await ensureRunning();
    const s = scope(t);
    const server = ctx.server;
    const name = uniq("dedup");
    const { SpySocket, spy } = makeSpySocket();
    const c = s.client(server.url, { webSocketConstructor: SpySocket });
    assert.equal(await withTimeout(c.query(fns.counterGet, { name }), 10_000, "counter get (connected)"), 0);

    let requestId;
    let firstSocket;
    let response;
    let killing;
    spy.onSend = (msg, sock) => {
      if (msg.type === "Mutation" && msg.args?.[0]?.name === name && requestId === undefined) {
        requestId = msg.requestId;
        firstSocket = sock;
      }
    };
    spy.onReceive = (msg, sock) => {
      if (sock === firstSocket && response) return false; // the connection "broke" here
      if (sock === firstSocket && msg.type === "MutationResponse" && msg.requestId === requestId) {
        response = msg;
        killing = server.kill(); // SIGKILL is sent synchronously
        return deliverResponse;
      }
      return true;
    };

    const p = c.mutation(fns.counterIncrement, { name });
    await waitUntil(() => killing, 10_000, `the MutationResponse (frames: ${frameSummary(spy)})`);
    await killing;
    assert.equal(response.success, true, `the server committed before the kill: ${show(response)}`);
    assert.equal(response.result, 1);
    await server.restart();

    const result = await withTimeout(p, 15_000, `the mutation to resolve after restart (${frameSummary(spy)})`);
    assert.equal(result, 1, `the mutation's result is the original one; frames: ${frameSummary(spy)}`);
    const resent = spy.sent.filter(({ socket, msg }) => socket !== firstSocket && msg.type === "Mutation" && msg.requestId === requestId);
    assert.equal(resent.length, 1, `the client re-sent requestId ${requestId} once on the new socket: ${frameSummary(spy)}`);

    const next = await withTimeout(c.mutation(fns.counterIncrement, { name }), 10_000, "follow-up increment");
    assert.equal(next, 2, `the re-sent increment must not be applied twice (counter after 1 + 1 increments); frames: ${frameSummary(spy)}`);
  });
}

test(`${V} client-side socket drop after MutationResponse: the live server de-duplicates the resend`, T, async (t) => {
  await ensureRunning();
  const s = scope(t);
  const name = uniq("drop");
  const { SpySocket, spy } = makeSpySocket();
  const c = s.client(ctx.server.url, { webSocketConstructor: SpySocket });
  const sub = s.subscribe(c, fns.counterGet, { name });
  await sub.waitFor((v) => v === 0, { what: "counter 0" });

  let requestId;
  let firstSocket;
  let dropped = false;
  spy.onSend = (msg, sock) => {
    if (msg.type === "Mutation" && requestId === undefined) {
      requestId = msg.requestId;
      firstSocket = sock;
    }
  };
  spy.onReceive = (msg, sock) => {
    if (sock === firstSocket && dropped) return false;
    if (sock === firstSocket && msg.type === "MutationResponse" && msg.requestId === requestId) {
      dropped = true;
      sock.terminate(); // abrupt close, as if the network failed
      return false;
    }
    return true;
  };
  const result = await withTimeout(c.mutation(fns.counterIncrement, { name }), 15_000, `the mutation across a client-side drop (${frameSummary(spy)})`);
  assert.ok(dropped, "the socket was dropped after the response");
  assert.equal(result, 1);
  assert.equal(await withTimeout(c.mutation(fns.counterIncrement, { name }), 10_000, "follow-up"), 2, `resend de-duplicated; frames: ${frameSummary(spy)}`);
  await sub.waitFor((v) => v === 2, { timeout: 5_000, what: "the subscription to show 2" });
});

test(`${V} SIGTERM shuts down gracefully; data persists; clients reconnect after restart`, T, async (t) => {
  await ensureRunning();
  const s = scope(t);
  const server = ctx.server;
  const channel = uniq("sigterm");
  const c = s.client(server.url);
  const sub = s.subscribe(c, fns.list, { channel });
  await sub.waitFor(() => true, { what: "first result" });
  await withTimeout(c.mutation(fns.send, { channel, body: "persist me" }), 10_000, "send");

  const started = Date.now();
  const exit = await server.stop();
  const took = Date.now() - started;
  assert.equal(exit.signal, null, `the server exited by itself on SIGTERM (took ${took} ms), not by our SIGKILL fallback: ${show(exit)}\n${server.outputTail(20)}`);
  assert.equal(exit.code, 0, `exit code after SIGTERM: ${show(exit)}\n${server.outputTail(20)}`);

  await server.restart();
  const http = s.http(server.url);
  assert.deepEqual(
    (await withTimeout(http.query(fns.list, { channel }), 10_000, "list after restart")).map((m) => m.body),
    ["persist me"],
  );
  await withTimeout(http.mutation(fns.send, { channel, body: "after sigterm" }), 10_000, "send");
  const list = await sub.waitFor((v) => v.length === 2, { timeout: 14_000, what: "the subscription to resume after SIGTERM + restart" });
  assert.deepEqual(list.map((m) => m.body), ["persist me", "after sigterm"]);
});
