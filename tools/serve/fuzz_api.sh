#!/usr/bin/env bash
# Fuzzes `swiftclip serve` from its own OpenAPI document with schemathesis (PyPI): every route, generated
# and mutated bodies, parameters and headers; fails on any 5xx other than the documented 503/504, on
# responses that break the document, and if the server dies. Uses the tiny test model and a small index.
# Usage: tools/serve/fuzz_api.sh [MAX_EXAMPLES]   (default 50 per operation)
set -euo pipefail
cd "$(dirname "$0")/../.."
examples="${1:-50}"
venv=tools/serve/.venv-fuzz
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q schemathesis==4.32.5
fi
bin=.build/release/swiftclip
model=Tests/CLIPEvaluationTests/Fixtures/model/config.json
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/photos"
cp Tests/CLIPDataTests/Fixtures/{china.jpg,flower.jpg,exact_64x100.png} "$work/photos/"
$bin index "$work/photos" --db "$work/index.sqlite" --model "$model" --seed 7 >/dev/null
$bin serve --model "$model" --seed 7 --db "$work/index.sqlite" --port 8799 --max-body-mb 4 > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do curl -sf localhost:8799/ready >/dev/null && break; sleep 0.2; done
# not_a_server_error: no 5xx; 503/504 are documented for load, which this run does not create, so none may appear.
"$venv/bin/schemathesis" run http://127.0.0.1:8799/openapi.json --checks not_a_server_error,status_code_conformance,content_type_conformance \
    --max-examples "$examples" --request-timeout 30 --suppress-health-check=all "${@:2}" | tee "$work/report.txt"
status=${PIPESTATUS[0]}
kill -0 "$pid" || { echo "swiftclip serve died during fuzzing"; cat "$work/serve.log"; exit 1; }
curl -sf localhost:8799/health >/dev/null || { echo "swiftclip serve stopped answering"; exit 1; }
echo "server alive after fuzzing; schemathesis exit status $status"
exit "$status"
