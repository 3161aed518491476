#!/usr/bin/env node
// Runs the e2e suite once per pinned client version (latest and 1.28) with
// node --test --test-concurrency=1, and exits non-zero if any run fails.
//
//   npm test                         # both versions
//   node scripts/run-all.mjs convex  # only the listed package(s)
//   node scripts/run-all.mjs -- test/03-auth.test.mjs   # only some files
//
// Env: CONNVO_BIN (binary), E2E_SERVER_LOG=1 (echo server output),
// E2E_CLIENT_LOG=1 (echo client logs), E2E_KEEP_DATA=1 (keep data dirs).

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ALL_PKGS = ["convex", "convex-1-28"];

const argv = process.argv.slice(2);
const sep = argv.indexOf("--");
const pkgArgs = sep === -1 ? argv : argv.slice(0, sep);
const fileArgs = sep === -1 ? [] : argv.slice(sep + 1);
const pkgs = pkgArgs.length ? pkgArgs : ALL_PKGS;
for (const p of pkgs) {
  if (!ALL_PKGS.includes(p)) {
    console.error(`unknown package ${p}; expected one of ${ALL_PKGS.join(", ")}`);
    process.exit(2);
  }
}

const files = fileArgs.length
  ? fileArgs
  : fs
      .readdirSync(path.join(E2E_DIR, "test"))
      .filter((f) => f.endsWith(".test.mjs"))
      .sort()
      .map((f) => path.join("test", f));

const bin = process.env.CONNVO_BIN ?? path.resolve(E2E_DIR, "..", "..", "target", "debug", "connvo");
if (!fs.existsSync(bin)) {
  console.error(`connvo binary not found at ${bin}; build it with \`cargo build -p connvo\` (or set CONNVO_BIN)`);
  process.exit(2);
}

function run(pkg) {
  const version = JSON.parse(fs.readFileSync(path.join(E2E_DIR, "node_modules", pkg, "package.json"), "utf8")).version;
  console.log(`\n=== e2e with ${pkg} (convex@${version}) ===\n`);
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ["--test", "--test-concurrency=1", "--test-reporter=spec", ...files],
      { cwd: E2E_DIR, stdio: "inherit", env: { ...process.env, CONVEX_PKG: pkg } },
    );
    child.on("exit", (code, signal) => resolve({ pkg, version, code: code ?? (signal ? 128 : 1), signal }));
  });
}

const results = [];
for (const pkg of pkgs) results.push(await run(pkg));

console.log("\n=== e2e summary ===");
for (const r of results) {
  console.log(`${r.code === 0 ? "PASS" : "FAIL"}  ${r.pkg} (convex@${r.version})${r.code === 0 ? "" : ` exit ${r.code}${r.signal ? " " + r.signal : ""}`}`);
}
process.exit(results.every((r) => r.code === 0) ? 0 : 1);
