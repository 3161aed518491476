// Spawns and controls real `connvo serve` processes for the end-to-end tests.
//
// Every process started here is tracked and killed when the test file's
// process exits (normally, by an uncaught error, or by SIGINT/SIGTERM), so a
// failing test never leaves a server behind. Temporary data dirs created here
// are removed by `dispose()`.

import { spawn, execFile } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The e2e package directory (tests/e2e). */
export const E2E_DIR = path.resolve(HERE, "..");
/** The repository root. */
export const REPO_ROOT = path.resolve(E2E_DIR, "..", "..");
/** The connvo binary (override with CONNVO_BIN). */
export const CONNVO_BIN =
  process.env.CONNVO_BIN ?? path.join(REPO_ROOT, "target", "debug", "connvo");

const LISTENING_RE = /connvo listening on (http:\/\/[^\s]+)/;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_DIR = path.join(E2E_DIR, ".logs");

// ---------------------------------------------------------------------------
// Process tracking and last-resort cleanup.

const live = new Set();

function killAllSync() {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

process.on("exit", killAllSync);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(sig, () => {
    killAllSync();
    process.exit(128 + (os.constants.signals[sig] ?? 0));
  });
}

/** Throws a helpful error when the binary has not been built. */
export function assertBinaryExists() {
  if (!fs.existsSync(CONNVO_BIN)) {
    throw new Error(
      `connvo binary not found at ${CONNVO_BIN}: build it with \`cargo build -p connvo\` ` +
        `in ${REPO_ROOT}, or point CONNVO_BIN at it`,
    );
  }
}

/** A fresh, empty temporary data dir. */
export async function makeTempDataDir(prefix = "connvo-e2e-") {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

function logFileFor(label) {
  fs.mkdirSync(LOG_DIR, { recursive: true });
  const pkg = process.env.CONVEX_PKG ?? "convex";
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  return path.join(LOG_DIR, `${stamp}-${pkg}-${label}-${process.pid}.log`);
}

/**
 * Spawns `connvo serve` once and waits for its listening line.
 * Resolves `{ child, url, port, logPath, tail }`.
 */
async function spawnServe({ dataDir, port, extraArgs, env, label }) {
  assertBinaryExists();
  const args = [
    "serve",
    "--data-dir",
    dataDir,
    "--port",
    String(port),
    "--test-functions",
    ...extraArgs,
  ];
  const logPath = logFileFor(label);
  const logStream = fs.createWriteStream(logPath, { flags: "a" });
  logStream.write(`$ ${CONNVO_BIN} ${args.join(" ")}\n`);
  const child = spawn(CONNVO_BIN, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  live.add(child);
  const tail = []; // last lines of stdout+stderr, for error messages
  const remember = (stream, line) => {
    tail.push(`[${stream}] ${line}`);
    if (tail.length > 200) tail.shift();
    logStream.write(`[${stream}] ${line}\n`);
    if (process.env.E2E_SERVER_LOG) process.stderr.write(`[connvo ${stream}] ${line}\n`);
  };
  const exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  child.once("error", (err) => remember("spawn", String(err)));
  readline.createInterface({ input: child.stderr }).on("line", (l) => remember("stderr", l));
  const stdoutLines = readline.createInterface({ input: child.stdout });

  const ready = new Promise((resolve) => {
    stdoutLines.on("line", (line) => {
      remember("stdout", line);
      const m = LISTENING_RE.exec(line);
      if (m) resolve(m[1]);
    });
  });
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve("timeout"), START_TIMEOUT_MS);
  });
  const outcome = await Promise.race([
    ready.then((url) => ({ url })),
    exited.then((e) => ({ exited: e })),
    timeout.then(() => ({ timeout: true })),
  ]);
  clearTimeout(timer);
  if (!outcome.url) {
    if (!outcome.exited) {
      child.kill("SIGKILL");
      await exited;
    }
    const why = outcome.timeout
      ? `did not print "connvo listening on …" within ${START_TIMEOUT_MS} ms`
      : `exited early (code ${outcome.exited.code}, signal ${outcome.exited.signal})`;
    const err = new Error(
      `connvo serve ${why}\n  command: ${CONNVO_BIN} ${args.join(" ")}\n  log: ${logPath}\n` +
        `  output (last lines):\n${tail.slice(-40).map((l) => "    " + l).join("\n")}`,
    );
    err.outputTail = tail.slice();
    logStream.end();
    throw err;
  }
  const url = outcome.url.replace(/\/+$/, "");
  const actualPort = Number(new URL(url).port);
  exited.then((e) => {
    logStream.write(`-- exited: code ${e.code} signal ${e.signal}\n`);
    logStream.end();
  });
  return { child, url, port: actualPort, logPath, tail, exited };
}

/**
 * A running (or stopped) connvo server bound to one data dir.
 *
 * - `url`, `port`: where it listens (the port is kept across restarts).
 * - `stop()`: SIGTERM, wait (then SIGKILL after 10 s). Resolves the exit status.
 * - `kill()`: SIGKILL, wait.
 * - `restart()`: start again on the same data dir and the same port.
 * - `mintToken({subject, email, name, org, role, ttlSecs})`: a dev JWT.
 * - `dispose()`: kill if running and remove the data dir if it was created here.
 */
export class ConnvoServer {
  constructor({ dataDir, ownsDataDir, extraArgs, env, label }) {
    this.dataDir = dataDir;
    this.ownsDataDir = ownsDataDir;
    this.extraArgs = extraArgs;
    this.env = env;
    this.label = label;
    this.proc = null;
    this.url = null;
    this.port = 0;
    this.starts = 0;
    this.logPaths = [];
  }

  get running() {
    return this.proc !== null && this.proc.child.exitCode === null && this.proc.child.signalCode === null;
  }

  /** Last lines of the current (or last) process's output. */
  outputTail(n = 40) {
    return this.proc ? this.proc.tail.slice(-n).join("\n") : "";
  }

  async start({ port } = {}) {
    if (this.running) throw new Error("server already running");
    const wantPort = port ?? this.port ?? 0;
    // Re-binding the same port right after a kill can race with the kernel
    // releasing it; retry a few times on an early exit.
    const deadline = Date.now() + 10_000;
    for (let attempt = 1; ; attempt++) {
      try {
        this.proc = await spawnServe({
          dataDir: this.dataDir,
          port: wantPort,
          extraArgs: this.extraArgs,
          env: this.env,
          label: `${this.label}-${++this.starts}`,
        });
        break;
      } catch (err) {
        const early = /exited early/.test(err.message);
        if (!(early && wantPort !== 0 && Date.now() < deadline && attempt < 20)) throw err;
        await sleep(250);
      }
    }
    this.logPaths.push(this.proc.logPath);
    this.url = this.proc.url;
    this.port = this.proc.port;
    return this;
  }

  async #signal(sig, graceMs) {
    if (!this.proc) return null;
    const { child, exited } = this.proc;
    if (child.exitCode !== null || child.signalCode !== null) return exited;
    child.kill(sig);
    let timer;
    const res = await Promise.race([
      exited,
      new Promise((r) => {
        timer = setTimeout(() => r(null), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (res) return res;
    child.kill("SIGKILL");
    return exited;
  }

  /** Graceful stop: SIGTERM, then SIGKILL after 10 s. */
  async stop() {
    return this.#signal("SIGTERM", STOP_TIMEOUT_MS);
  }

  /** Hard kill: SIGKILL. */
  async kill() {
    return this.#signal("SIGKILL", STOP_TIMEOUT_MS);
  }

  /** Starts a new process on the same data dir and port. */
  async restart() {
    if (this.running) await this.stop();
    return this.start({ port: this.port });
  }

  async health() {
    const res = await fetch(`${this.url}/health`);
    await res.arrayBuffer();
    return res.status;
  }

  mintToken(opts) {
    return mintDevToken(this.dataDir, opts);
  }

  async dispose() {
    await this.kill();
    if (this.ownsDataDir && !process.env.E2E_KEEP_DATA) {
      await fsp.rm(this.dataDir, { recursive: true, force: true });
    }
  }
}

/**
 * Starts a fresh server. Options: `dataDir` (default: a new temp dir, removed
 * by dispose), `port` (default 0 = any free port), `extraArgs`, `env`, `label`.
 */
export async function startServer({ dataDir, port = 0, extraArgs = [], env = {}, label = "serve" } = {}) {
  const ownsDataDir = !dataDir;
  const dir = dataDir ?? (await makeTempDataDir());
  const server = new ConnvoServer({ dataDir: dir, ownsDataDir, extraArgs, env, label });
  try {
    await server.start({ port });
  } catch (err) {
    await server.dispose();
    throw err;
  }
  return server;
}

/**
 * Mints a dev token with `connvo dev-token` for a data dir; resolves the JWT
 * (the last non-empty line of stdout).
 */
export function mintDevToken(dataDir, { subject, email, name, org, role, ttlSecs } = {}) {
  assertBinaryExists();
  if (!subject) throw new Error("mintDevToken: subject is required");
  const args = ["dev-token", "--data-dir", dataDir, "--subject", subject];
  if (email !== undefined) args.push("--email", email);
  if (name !== undefined) args.push("--name", name);
  if (org !== undefined) args.push("--org", org);
  if (role !== undefined) args.push("--role", role);
  if (ttlSecs !== undefined) args.push("--ttl-secs", String(ttlSecs));
  return new Promise((resolve, reject) => {
    execFile(CONNVO_BIN, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`connvo ${args.join(" ")} failed: ${err.message}\n${stderr}`));
        return;
      }
      const lines = stdout.split("\n").map((l) => l.trim()).filter(Boolean);
      const token = lines.at(-1);
      if (!token || token.split(".").length !== 3) {
        reject(new Error(`connvo dev-token printed no JWT; stdout=${JSON.stringify(stdout)} stderr=${stderr}`));
        return;
      }
      resolve(token);
    });
  });
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Registers node:test `before`/`after` hooks that start one server for the
 * file and always dispose it. Returns a holder whose `.server` is set once
 * started.
 */
export function useServer(hooks, opts = {}) {
  const holder = { server: null };
  hooks.before(async () => {
    holder.server = await startServer(opts);
  });
  hooks.after(async () => {
    if (holder.server) await holder.server.dispose();
  });
  return holder;
}

