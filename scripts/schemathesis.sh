#!/usr/bin/env bash
# Fuzzes the HTTP API against its own OpenAPI document with schemathesis.
#
# Spawns `connvo serve --test-functions` on a free port with a fresh data
# dir, mints a dev token, checks that GET /openapi.json is a valid OpenAPI 3.1
# document, then runs schemathesis (examples, coverage and fuzzing phases,
# positive and negative data) with the checks: no 5xx, response bodies match
# their schemas, documented status codes and content types. Fails on any
# finding, on server errors in the log, or if the server dies.
#
# Needs: cargo, python3 (>= 3.9) with venv, curl. The virtualenv lives in
# target/schemathesis-venv (created on first use).
#
# Environment: CONNVO_BIN (default: build and use target/debug/connvo),
# SCHEMATHESIS_MAX_EXAMPLES (per operation and phase, default 50),
# SCHEMATHESIS_SEED (default 1), SCHEMATHESIS_TIMEOUT (seconds for the
# schemathesis run, default 150).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
SPEC_VALIDATOR_VERSION=0.7.2
VENV=target/schemathesis-venv
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
SEED=${SCHEMATHESIS_SEED:-1}
RUN_TIMEOUT=${SCHEMATHESIS_TIMEOUT:-150}

step() { printf '\n==> %s\n' "$*"; }

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" ||
  ! "$VENV/bin/python" -c "import openapi_spec_validator" 2>/dev/null; then
  step "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$SPEC_VALIDATOR_VERSION"
fi

if [ -z "${CONNVO_BIN:-}" ]; then
  step "building connvo"
  cargo build --quiet -p connvo
  CONNVO_BIN=target/debug/connvo
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/connvo-schemathesis.XXXXXX")
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step "starting connvo serve --test-functions"
: >"$WORK/stdout"
RUST_LOG=${RUST_LOG:-warn} "$CONNVO_BIN" serve --data-dir "$WORK/data" --port 0 \
  --test-functions --sqlite-sync normal >"$WORK/stdout" 2>"$WORK/server.log" &
SERVER_PID=$!
URL=
for _ in $(seq 1 300); do
  URL=$(sed -n 's/^connvo listening on \(http:\/\/[^ ]*\).*/\1/p' "$WORK/stdout" | head -n1)
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "server exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/server.log" >&2; echo "server did not start" >&2; exit 1; }
echo "server at $URL"

TOKEN=$("$CONNVO_BIN" dev-token --data-dir "$WORK/data" --subject user_01JH7ZK3QX5T8B2M9W4N6P0RCD \
  --email ada@example.com --name "Ada Lovelace" --org org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX \
  --role admin --ttl-secs 3600 | tail -n1)

step "validating $URL/openapi.json (OpenAPI 3.1)"
curl -fsS "$URL/openapi.json" -o "$WORK/openapi.json"
"$VENV/bin/python" - "$WORK/openapi.json" <<'PY'
import json, sys
from openapi_spec_validator import validate
spec = json.load(open(sys.argv[1]))
validate(spec)
ops = sum(len(item) for item in spec["paths"].values())
print(f"valid OpenAPI {spec['openapi']}: {ops} operations")
PY
curl -fsS "$URL/docs" -o "$WORK/docs.html"
grep -q "testing/messages:list" "$WORK/docs.html" || { echo "/docs does not list the functions" >&2; exit 1; }

step "schemathesis $SCHEMATHESIS_VERSION (max $MAX_EXAMPLES examples per operation, seed $SEED)"
status=0
# Run inside target/ so schemathesis' replay cache (.schemathesis/) and the
# JUnit report stay out of the source tree.
(cd target && timeout "$RUN_TIMEOUT" schemathesis-venv/bin/st run "$URL/openapi.json" \
  --url "$URL" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --phases examples,coverage,fuzzing \
  --mode all \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --workers 2 \
  --request-timeout 15 \
  --generation-database none \
  --report junit --report-junit-path schemathesis-junit.xml \
  --no-color) || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "the server died during the run" >&2
  status=1
fi
if grep -E " ERROR |panicked" "$WORK/server.log" >"$WORK/errors.log"; then
  echo "server errors during the run:" >&2
  head -n 20 "$WORK/errors.log" >&2
  status=1
fi
exit $status
