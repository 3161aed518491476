// The product flow end to end with the official client, as the web app drives
// it: sign-up (upsertUser) → onboarding (listCatalog, saveOnboarding) → the
// host creates a meeting and invites a colleague, who sees it live and joins
// once the host starts it → both chat and see each other's messages live →
// a colleague outside the meeting is refused, then reads (but cannot write)
// as an observer → the host ends the meeting, which the participant sees live
// and after which the chat is read-only → the host removes the participant,
// whose live subscriptions turn into FORBIDDEN.
//
// The steps run in order against one server and share their clients; once a
// step fails the later steps are skipped (their preconditions are gone).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../lib/server.mjs";
import { T, Scope, anyApi, withTimeout, settle, show, errInfo, ConvexError, CLIENT_VERSION, PKG } from "../lib/client.mjs";

const V = `[${PKG}@${CLIENT_VERSION}]`;

const s = new Scope();
const ctx = { server: null };
// Clients are closed before the server goes away.
after(async () => {
  await s.close();
  if (ctx.server) await ctx.server.dispose();
});

const api = {
  upsertUser: anyApi.users.mutations.upsertUser,
  saveOnboarding: anyApi.users.mutations.saveOnboarding,
  getCurrentUser: anyApi.users.queries.getCurrentUser,
  getOnboardingState: anyApi.users.queries.getOnboardingState,
  getCurrentUserProfile: anyApi.profiles.queries.getCurrentUserProfile,
  listCatalog: anyApi.interests.queries.listCatalog,
  createMeeting: anyApi.meetings.lifecycle.createMeeting,
  addParticipant: anyApi.meetings.lifecycle.addParticipant,
  removeParticipant: anyApi.meetings.lifecycle.removeParticipant,
  startMeeting: anyApi.meetings.lifecycle.startMeeting,
  endMeeting: anyApi.meetings.lifecycle.endMeeting,
  joinMeeting: anyApi.meetings.lifecycle.joinMeeting,
  getMeeting: anyApi.meetings.queries.getMeeting,
  listUserMeetings: anyApi.meetings.queries.listUserMeetings,
  listMeetingParticipants: anyApi.meetings.queries.listMeetingParticipants,
  sendMessage: anyApi.messaging.mutations.sendMessage,
  listMessages: anyApi.messaging.queries.listMessages,
  listThread: anyApi.messaging.queries.listThread,
};

const ORG = "org_acme";
const PEOPLE = {
  host: { subject: "user_ada", email: "ada@acme.example", name: "Ada Lovelace", org: ORG, role: "admin" },
  guest: { subject: "user_grace", email: "grace@acme.example", name: "Grace Hopper", org: ORG, role: "member" },
  outsider: { subject: "user_linus", email: "linus@acme.example", name: "Linus Pauling", org: ORG, role: "member" },
};
const WAIT = 10_000; // every single wait below; each test is capped at 20 s by T
const PAGE = { numItems: 20, cursor: null };

/** Per person: {client, id, subs}. */
const who = {};
let meetingId;
const msgIds = {};
let broken = null;

/** A step of the flow: skipped once an earlier step failed. */
function step(name, fn) {
  test(`${V} ${name}`, T, async (t) => {
    if (broken) {
      t.skip(`an earlier step failed: ${broken}`);
      return;
    }
    try {
      await fn(t);
    } catch (e) {
      broken = name;
      throw e;
    }
  });
}

/** Awaits a call that must fail with a ConvexError of `code`; returns the error. */
async function mustFail(promise, code, label) {
  const r = await settle(promise, WAIT, label);
  assert.equal(r.ok, false, `${label}: expected ${code}, got value ${show(r.value)}`);
  assertCode(r.error, code, label);
  return r.error;
}

function assertCode(err, code, label) {
  assert.ok(err instanceof ConvexError, `${label}: expected a ConvexError, got ${show(errInfo(err))}`);
  assert.equal(err.data?.code, code, `${label}: err.data = ${show(err.data)}`);
  assert.equal(typeof err.data?.message, "string", `${label}: err.data = ${show(err.data)}`);
}

const call = (p, label) => withTimeout(p, WAIT, label);

before(async () => {
  ctx.server = await startServer({ label: "product" });
  for (const [key, person] of Object.entries(PEOPLE)) {
    const token = await ctx.server.mintToken(person);
    const client = s.client(ctx.server.url);
    client.setAuth(async () => token);
    who[key] = { client, person, subs: {} };
  }
});

// ---------------------------------------------------------------------------
// Sign-up and onboarding.

step("sign-up: upsertUser provisions each caller from the token's claims", async () => {
  for (const [key, me] of Object.entries(who)) {
    const { client, person } = me;
    // Before sign-up the web app polls getCurrentUser, which is null.
    assert.equal(await call(client.query(api.getCurrentUser, {}), `${key} getCurrentUser before`), null);
    const id = await call(client.mutation(api.upsertUser, {}), `${key} upsertUser`);
    assert.equal(typeof id, "string", `${key} upsertUser returned ${show(id)}`);
    me.id = id;
    const user = await call(client.query(api.getCurrentUser, {}), `${key} getCurrentUser`);
    assert.equal(user._id, id, show(user));
    assert.equal(user.workosUserId, person.subject, show(user));
    assert.equal(user.email, person.email, show(user));
    assert.equal(user.emailVerified, true, show(user));
    assert.equal(user.profileSource, "token", show(user));
    assert.equal(user.displayName, person.name, show(user));
    assert.equal(user.orgId, ORG, show(user));
    assert.equal(user.orgRole, person.role, show(user));
    assert.equal(user.isActive, true, show(user));
    // Signing in again is an update of the same user, not a second user.
    assert.equal(await call(client.mutation(api.upsertUser, {}), `${key} upsertUser again`), id);
  }
  assert.equal(new Set([who.host.id, who.guest.id, who.outsider.id]).size, 3);
});

step("onboarding: incomplete after sign-up, complete (live) after saveOnboarding with catalog interests", async () => {
  const catalog = await call(who.host.client.query(api.listCatalog, {}), "listCatalog");
  assert.ok(Array.isArray(catalog) && catalog.length >= 4, `catalog should be seeded: ${show(catalog)}`);
  for (const e of catalog) {
    assert.equal(typeof e.key, "string", show(e));
    assert.equal(typeof e.label, "string", show(e));
    assert.ok(["academic", "industry", "skill", "personal"].includes(e.category), show(e));
  }
  const byCategory = (c) => catalog.filter((e) => e.category === c);
  const academic = await call(who.host.client.query(api.listCatalog, { category: "academic" }), "listCatalog academic");
  assert.deepEqual(
    academic.map((e) => e.key).sort(),
    byCategory("academic").map((e) => e.key).sort(),
    "listCatalog {category} returns exactly that category",
  );

  for (const [key, me] of Object.entries(who).filter(([k]) => k !== "outsider")) {
    const { client } = me;
    const state = s.subscribe(client, api.getOnboardingState, {}, `${key} getOnboardingState`);
    const before = await state.waitFor(() => true, { timeout: WAIT, what: "the first onboarding state" });
    assert.equal(before.userId, me.id, show(before));
    assert.equal(before.onboardingComplete, false, show(before));
    assert.equal(before.profileExists, true, `upsertUser creates a default profile: ${show(before)}`);
    assert.equal(before.completedAt, undefined, show(before));

    const picks = catalog.slice(0, 2).concat(key === "host" ? catalog.slice(2, 3) : []);
    const form = {
      age: key === "host" ? 36 : 41,
      gender: "female",
      field: key === "host" ? "Mathematics" : "Computer Science",
      jobTitle: key === "host" ? "Lead Engineer" : "Rear Admiral",
      company: "Acme Corp",
      bio: `${me.person.name} works on analytical engines and compilers.`,
      interests: picks.map((e) => ({ id: e.key, name: e.label, category: e.category })),
      idempotencyKey: `onboarding-${key}`,
    };
    const saved = await call(client.mutation(api.saveOnboarding, form), `${key} saveOnboarding`);
    assert.equal(saved.userId, me.id, show(saved));
    assert.equal(typeof saved.profileId, "string", show(saved));
    assert.equal(saved.interestsCount, picks.length, show(saved));
    assert.equal(saved.onboardingCompleted, true, show(saved));

    const after = await state.waitFor((v) => v.onboardingComplete === true, {
      timeout: WAIT,
      what: `${key}'s onboarding to turn complete live`,
    });
    assert.equal(after.profileExists, true, show(after));
    assert.equal(after.profileId, saved.profileId, show(after));
    assert.equal(typeof after.completedAt, "number", show(after));

    const profile = await call(client.query(api.getCurrentUserProfile, {}), `${key} getCurrentUserProfile`);
    assert.equal(profile._id, saved.profileId, show(profile));
    assert.equal(profile.userId, me.id, show(profile));
    for (const f of ["age", "gender", "field", "jobTitle", "company", "bio"]) {
      assert.equal(profile[f], form[f], `profile.${f}: ${show(profile)}`);
    }

    // Idempotent: the same key replays the first result.
    const again = await call(client.mutation(api.saveOnboarding, form), `${key} saveOnboarding replay`);
    assert.deepEqual(again, saved);
    state.unsubscribe();
  }

  // usageCount counts the users who chose each entry: 2, 2 and 1.
  const after = await call(who.guest.client.query(api.listCatalog, {}), "listCatalog after onboarding");
  const usage = Object.fromEntries(after.map((e) => [e.key, e.usageCount]));
  assert.equal(usage[catalog[0].key], 2, show(after.slice(0, 4)));
  assert.equal(usage[catalog[1].key], 2, show(after.slice(0, 4)));
  assert.equal(usage[catalog[2].key], 1, show(after.slice(0, 4)));
});

// ---------------------------------------------------------------------------
// The meeting.

step("host creates a meeting; the invited guest sees it live in listUserMeetings", async () => {
  const { host, guest } = who;
  guest.subs.meetings = s.subscribe(guest.client, api.listUserMeetings, {}, "guest listUserMeetings");
  const none = await guest.subs.meetings.waitFor(() => true, { timeout: WAIT, what: "the guest's first meeting list" });
  assert.deepEqual(none, [], "the guest takes part in no meeting yet");

  const created = await call(
    host.client.mutation(api.createMeeting, {
      title: "Q1 planning kickoff",
      description: "Goals, owners and timeline",
      duration: 600_000,
    }),
    "createMeeting",
  );
  assert.equal(typeof created.meetingId, "string", show(created));
  assert.equal(created.videoProvider, "webrtc", show(created));
  assert.equal(created.webrtcReady, true, show(created));
  assert.equal(created.features.recording, false, show(created));
  assert.equal(created.features.maxParticipants, 4, show(created));
  meetingId = created.meetingId;

  const hostView = await call(host.client.query(api.getMeeting, { meetingId }), "host getMeeting");
  assert.equal(hostView._id, meetingId, show(hostView));
  assert.equal(hostView.title, "Q1 planning kickoff", show(hostView));
  assert.equal(hostView.description, "Goals, owners and timeline", show(hostView));
  assert.equal(hostView.organizerId, host.id, show(hostView));
  assert.equal(hostView.state, "scheduled", show(hostView));
  assert.equal(hostView.participantCount, 1, show(hostView));
  assert.equal(hostView.orgId, ORG, show(hostView));
  assert.equal(hostView.duration, 600_000, show(hostView));
  assert.equal(hostView.userRole, "host", show(hostView));
  assert.equal(hostView.userPresence, "invited", show(hostView));

  // Before the invitation the guest may not read the meeting.
  await mustFail(guest.client.query(api.getMeeting, { meetingId }), "FORBIDDEN", "guest getMeeting before the invitation");

  const added = await call(
    host.client.mutation(api.addParticipant, { meetingId, userId: guest.id, role: "participant" }),
    "addParticipant guest",
  );
  assert.equal(added.success, true, show(added));
  assert.equal(typeof added.participantId, "string", show(added));

  const list = await guest.subs.meetings.waitFor((v) => v.length === 1, {
    timeout: WAIT,
    what: "the invitation to appear live in the guest's listUserMeetings",
  });
  assert.equal(list[0]._id, meetingId, show(list));
  assert.equal(list[0].title, "Q1 planning kickoff", show(list));
  assert.equal(list[0].state, "scheduled", show(list));
  assert.equal(list[0].organizerId, host.id, show(list));
  assert.equal(list[0].participantCount, 2, show(list));
  assert.equal(list[0].userRole, "participant", show(list));
  assert.equal(list[0].userPresence, "invited", show(list));

  // Inviting twice is refused.
  await mustFail(
    host.client.mutation(api.addParticipant, { meetingId, userId: guest.id, role: "participant" }),
    "VALIDATION_ERROR",
    "addParticipant guest again",
  );
});

step("the guest cannot join before the start; host starts; the guest sees it live and joins", async () => {
  const { host, guest } = who;
  guest.subs.meeting = s.subscribe(guest.client, api.getMeeting, { meetingId }, "guest getMeeting");
  const scheduled = await guest.subs.meeting.waitFor((v) => v?._id === meetingId, { timeout: WAIT, what: "the guest's meeting" });
  assert.equal(scheduled.state, "scheduled", show(scheduled));
  assert.equal(scheduled.userRole, "participant", show(scheduled));

  await mustFail(guest.client.mutation(api.joinMeeting, { meetingId }), "MEETING_NOT_ACTIVE", "joinMeeting before the start");
  // Only hosts start meetings.
  await mustFail(guest.client.mutation(api.startMeeting, { meetingId }), "INSUFFICIENT_PERMISSIONS", "guest startMeeting");

  host.subs.participants = s.subscribe(host.client, api.listMeetingParticipants, { meetingId }, "host listMeetingParticipants");
  const rows = await host.subs.participants.waitFor((v) => v.length === 2, { timeout: WAIT, what: "two participants" });
  assert.deepEqual(
    rows.map((r) => [r.userId, r.role, r.presence]),
    [
      [host.id, "host", "invited"],
      [guest.id, "participant", "invited"],
    ],
  );
  assert.equal(rows[1].user._id, guest.id, show(rows[1]));
  assert.equal(rows[1].user.displayName, "Grace Hopper", show(rows[1]));
  assert.equal(rows[1].user.email, undefined, `participants never see each other's email: ${show(rows[1])}`);

  const started = await call(host.client.mutation(api.startMeeting, { meetingId }), "startMeeting");
  assert.equal(started.success, true, show(started));
  assert.equal(started.videoProvider, "webrtc", show(started));
  assert.equal(started.webrtcReady, true, show(started));
  assert.equal(started.roomInfo?.roomId, `webrtc_${meetingId}`, show(started));
  assert.ok(Array.isArray(started.roomInfo?.iceServers) && started.roomInfo.iceServers.length > 0, show(started));

  const active = await guest.subs.meeting.waitFor((v) => v?.state === "active", {
    timeout: WAIT,
    what: "the meeting to turn active live for the guest",
  });
  assert.equal(active._id, meetingId);
  await guest.subs.meetings.waitFor((v) => v[0]?.state === "active", {
    timeout: WAIT,
    what: "the guest's listUserMeetings to show the meeting active",
  });
  await mustFail(host.client.mutation(api.startMeeting, { meetingId }), "CONFLICT", "startMeeting twice");

  const joined = await call(guest.client.mutation(api.joinMeeting, { meetingId }), "guest joinMeeting");
  assert.deepEqual(joined, { success: true, webrtcReady: true });
  const hostJoined = await call(host.client.mutation(api.joinMeeting, { meetingId }), "host joinMeeting");
  assert.deepEqual(hostJoined, { success: true, webrtcReady: true });

  const present = await host.subs.participants.waitFor(
    (v) => v.length === 2 && v.every((r) => r.presence === "joined"),
    { timeout: WAIT, what: "both participants to be joined, live for the host" },
  );
  for (const r of present) assert.equal(typeof r.joinedAt, "number", show(r));
  const guestView = await guest.subs.meeting.waitFor((v) => v?.userPresence === "joined", {
    timeout: WAIT,
    what: "the guest's own presence to be joined",
  });
  assert.equal(guestView.state, "active");
});

step("chat: each side sees the other's messages live, newest first; threads carry parentId", async () => {
  const { host, guest } = who;
  const args = { meetingId, paginationOpts: PAGE };
  host.subs.chat = s.subscribe(host.client, api.listMessages, args, "host listMessages");
  guest.subs.chat = s.subscribe(guest.client, api.listMessages, args, "guest listMessages");
  for (const sub of [host.subs.chat, guest.subs.chat]) {
    const empty = await sub.waitFor(() => true, { timeout: WAIT, what: "an empty chat" });
    assert.deepEqual(empty.page, [], show(empty));
    assert.equal(empty.isDone, true, show(empty));
    assert.equal(typeof empty.continueCursor, "string", show(empty));
  }

  msgIds.hello = await call(
    host.client.mutation(api.sendMessage, { meetingId, content: "  Welcome! Agenda: hiring plan, then the roadmap  " }),
    "host sendMessage",
  );
  assert.equal(typeof msgIds.hello, "string");
  const seenByGuest = await guest.subs.chat.waitFor((v) => v.page.length === 1, {
    timeout: WAIT,
    what: "the host's message live in the guest's chat",
  });
  const m1 = seenByGuest.page[0];
  assert.equal(m1._id, msgIds.hello, show(m1));
  assert.equal(m1.meetingId, meetingId, show(m1));
  assert.equal(m1.userId, host.id, show(m1));
  assert.equal(m1.content, "Welcome! Agenda: hiring plan, then the roadmap", "content is trimmed");
  assert.equal(typeof m1.timestamp, "number", show(m1));
  assert.equal(m1.parentId, undefined, show(m1));

  msgIds.reply = await call(
    guest.client.mutation(api.sendMessage, { meetingId, content: "Thanks, can we add onboarding metrics?" }),
    "guest sendMessage",
  );
  const seenByHost = await host.subs.chat.waitFor((v) => v.page.length === 2, {
    timeout: WAIT,
    what: "the guest's message live in the host's chat",
  });
  assert.deepEqual(
    seenByHost.page.map((m) => [m._id, m.userId, m.content]),
    [
      [msgIds.reply, guest.id, "Thanks, can we add onboarding metrics?"],
      [msgIds.hello, host.id, "Welcome! Agenda: hiring plan, then the roadmap"],
    ],
    "newest first",
  );
  assert.ok(seenByHost.page[0].timestamp >= seenByHost.page[1].timestamp, show(seenByHost.page));
  assert.equal(seenByHost.isDone, true);

  // A reply in the host's thread: not in the channel page, counted on the parent.
  const threadReply = await call(
    guest.client.mutation(api.sendMessage, { meetingId, content: "Agreed on the hiring plan.", parentId: msgIds.hello }),
    "guest reply in thread",
  );
  const withCount = await host.subs.chat.waitFor((v) => v.page[1]?.replyCount === 1, {
    timeout: WAIT,
    what: "the parent's replyCount to reach 1 live",
  });
  assert.equal(withCount.page.length, 2, `replies stay out of the channel page: ${show(withCount.page)}`);
  assert.equal(typeof withCount.page[1].lastReplyAt, "number", show(withCount.page[1]));
  const thread = await call(host.client.query(api.listThread, { messageId: msgIds.hello }), "listThread");
  assert.equal(thread.message._id, msgIds.hello, show(thread));
  assert.deepEqual(
    thread.replies.map((r) => [r._id, r.userId, r.parentId, r.content]),
    [[threadReply, guest.id, msgIds.hello, "Agreed on the hiring plan."]],
  );

  // Page size 1 + cursor: the second page holds the older message.
  const p1 = await call(guest.client.query(api.listMessages, { meetingId, paginationOpts: { numItems: 1, cursor: null } }), "page 1");
  assert.deepEqual(p1.page.map((m) => m._id), [msgIds.reply]);
  assert.equal(p1.isDone, false);
  const p2 = await call(
    guest.client.query(api.listMessages, { meetingId, paginationOpts: { numItems: 1, cursor: p1.continueCursor } }),
    "page 2",
  );
  assert.deepEqual(p2.page.map((m) => m._id), [msgIds.hello]);

  await mustFail(guest.client.mutation(api.sendMessage, { meetingId, content: "   " }), "VALIDATION_ERROR", "empty message");
});

step("a colleague outside the meeting is FORBIDDEN; as an observer they read but cannot write", async () => {
  const { host, outsider } = who;
  const c = outsider.client;
  await mustFail(c.query(api.getMeeting, { meetingId }), "FORBIDDEN", "outsider getMeeting");
  await mustFail(c.query(api.listMessages, { meetingId, paginationOpts: PAGE }), "FORBIDDEN", "outsider listMessages");
  await mustFail(c.query(api.listMeetingParticipants, { meetingId }), "FORBIDDEN", "outsider listMeetingParticipants");
  await mustFail(c.mutation(api.sendMessage, { meetingId, content: "let me in" }), "FORBIDDEN", "outsider sendMessage");
  await mustFail(c.mutation(api.joinMeeting, { meetingId }), "FORBIDDEN", "outsider joinMeeting");
  await mustFail(c.mutation(api.endMeeting, { meetingId }), "FORBIDDEN", "outsider endMeeting");
  await mustFail(
    c.mutation(api.addParticipant, { meetingId, userId: outsider.id, role: "host" }),
    "FORBIDDEN",
    "outsider adds themselves",
  );
  const mine = await call(c.query(api.listUserMeetings, {}), "outsider listUserMeetings");
  assert.deepEqual(mine, [], "the meeting is not listed for a non-participant");

  // A live subscription that is FORBIDDEN starts working once the host adds the user.
  outsider.subs.chat = s.subscribe(c, api.listMessages, { meetingId, paginationOpts: PAGE }, "outsider listMessages");
  const denied = await outsider.subs.chat.waitForError({ timeout: WAIT });
  assertCode(denied, "FORBIDDEN", "outsider live listMessages");

  const added = await call(
    host.client.mutation(api.addParticipant, { meetingId, userId: outsider.id, role: "observer" }),
    "addParticipant observer",
  );
  assert.equal(added.success, true, show(added));
  const live = await outsider.subs.chat.waitFor((v) => v?.page?.length === 2, {
    timeout: WAIT,
    what: "the observer's FORBIDDEN subscription to start returning the chat",
  });
  assert.deepEqual(live.page.map((m) => m.userId), [who.guest.id, host.id]);
  outsider.subs.chat.unsubscribe();
  const read = await call(c.query(api.listMessages, { meetingId, paginationOpts: PAGE }), "observer listMessages");
  assert.deepEqual(read.page.map((m) => m._id), [msgIds.reply, msgIds.hello]);
  const view = await call(c.query(api.getMeeting, { meetingId }), "observer getMeeting");
  assert.equal(view.userRole, "observer", show(view));
  assert.equal(view.state, "active", show(view));
  await mustFail(
    c.mutation(api.sendMessage, { meetingId, content: "observers only read" }),
    "INSUFFICIENT_PERMISSIONS",
    "observer sendMessage",
  );
  await mustFail(c.mutation(api.endMeeting, { meetingId }), "INSUFFICIENT_PERMISSIONS", "observer endMeeting");
  const after = await call(c.query(api.listMessages, { meetingId, paginationOpts: PAGE }), "observer listMessages after");
  assert.equal(after.page.length, 2, `the observer's refused message was not stored: ${show(after.page)}`);
});

step("host ends the meeting: concluded live for the guest; chat is read-only (CONFLICT)", async () => {
  const { host, guest } = who;
  await mustFail(guest.client.mutation(api.endMeeting, { meetingId }), "INSUFFICIENT_PERMISSIONS", "guest endMeeting");

  const ended = await call(host.client.mutation(api.endMeeting, { meetingId }), "endMeeting");
  assert.equal(ended.success, true, show(ended));
  assert.equal(typeof ended.duration, "number", show(ended));
  assert.ok(ended.duration >= 0, show(ended));

  const concluded = await guest.subs.meeting.waitFor((v) => v?.state === "concluded", {
    timeout: WAIT,
    what: "the meeting to turn concluded live for the guest",
  });
  assert.equal(concluded.userPresence, "left", `everyone still joined is marked left: ${show(concluded)}`);
  await guest.subs.meetings.waitFor((v) => v[0]?._id === meetingId && v[0].state === "concluded", {
    timeout: WAIT,
    what: "the guest's listUserMeetings to show the meeting concluded",
  });
  const rows = await host.subs.participants.waitFor(
    (v) => v.filter((r) => r.presence === "left").length === 2,
    { timeout: WAIT, what: "host and guest marked left" },
  );
  for (const r of rows.filter((r) => r.presence === "left")) assert.equal(typeof r.leftAt, "number", show(r));

  const err = await mustFail(
    guest.client.mutation(api.sendMessage, { meetingId, content: "one more thing" }),
    "CONFLICT",
    "sendMessage after the end",
  );
  assert.match(err.data.message, /concluded/, show(err.data));
  await mustFail(host.client.mutation(api.sendMessage, { meetingId, content: "bye" }), "CONFLICT", "host sendMessage after the end");
  await mustFail(host.client.mutation(api.endMeeting, { meetingId }), "CONFLICT", "endMeeting twice");
  await mustFail(host.client.mutation(api.startMeeting, { meetingId }), "CONFLICT", "startMeeting after the end");
  await mustFail(guest.client.mutation(api.joinMeeting, { meetingId }), "MEETING_NOT_ACTIVE", "joinMeeting after the end");

  // The chat history stays readable.
  const history = await call(guest.client.query(api.listMessages, { meetingId, paginationOpts: PAGE }), "chat after the end");
  assert.deepEqual(history.page.map((m) => m._id), [msgIds.reply, msgIds.hello]);
});

step("host removes the guest: the guest's live subscriptions turn into FORBIDDEN", async () => {
  const { host, guest } = who;
  const meetingErrors = guest.subs.meeting.errors.length;
  const chatErrors = guest.subs.chat.errors.length;
  assert.equal(meetingErrors, 0, guest.subs.meeting.describe());
  assert.equal(chatErrors, 0, guest.subs.chat.describe());

  const removed = await call(host.client.mutation(api.removeParticipant, { meetingId, userId: guest.id }), "removeParticipant");
  assert.equal(removed, null);

  // Both subscriptions had no error before the removal (asserted above), so
  // the current error (if it already arrived) is the one caused by it.
  const e1 = await guest.subs.meeting.waitForError({ timeout: WAIT });
  assertCode(e1, "FORBIDDEN", "guest live getMeeting after removal");
  const e2 = await guest.subs.chat.waitForError({ timeout: WAIT });
  assertCode(e2, "FORBIDDEN", "guest live listMessages after removal");
  const list = await guest.subs.meetings.waitFor((v) => v.length === 0, {
    timeout: WAIT,
    what: "the meeting to leave the guest's listUserMeetings",
  });
  assert.deepEqual(list, []);
  await mustFail(guest.client.query(api.getMeeting, { meetingId }), "FORBIDDEN", "guest getMeeting after removal");

  // The host's view is unaffected and reflects the removal.
  const rows = await host.subs.participants.waitFor((v) => !v.some((r) => r.userId === guest.id), {
    timeout: WAIT,
    what: "the guest to leave the host's participant list",
  });
  assert.deepEqual(rows.map((r) => [r.userId, r.role]), [
    [host.id, "host"],
    [who.outsider.id, "observer"],
  ]);
  const hostView = await call(host.client.query(api.getMeeting, { meetingId }), "host getMeeting after removal");
  assert.equal(hostView.state, "concluded", show(hostView));
  assert.equal(hostView.participantCount, 2, show(hostView));
});
