#!/usr/bin/env bash
# The eval set in CI, in four steps: export the current version for promptfoo, run promptfoo against
# your model, import its results, and gate. Run from the repository root on a runner that has the
# flywheel data directory (FLYWHEEL_DATA) and promptfoo (npm ci --omit=optional --prefix examples/ci).
#
#   FLYWHEEL_TARGET=mybot:reply MODEL_VERSION=mybot-$GIT_SHA examples/ci/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-build/flywheel-ci}"
flywheel="${FLYWHEEL:-flywheel}"
mkdir -p "$out"

# 1. The current eval set version, as promptfoo tests with a ready config.
rm -f "$out/promptfooconfig.yaml"
"$flywheel" evalset export --format promptfoo --output "$out/tests.jsonl" \
  --provider "file://$here/provider.py" --model-version "${MODEL_VERSION:-my-model}"

# 2. promptfoo, offline and quiet: no telemetry, no update check, no traffic at all (the proxy goes
#    nowhere), its state in the run's folder. It exits 100 when a test fails: the gate decides.
PROMPTFOO_DISABLE_TELEMETRY=1 PROMPTFOO_DISABLE_UPDATE=1 PROMPTFOO_CONFIG_DIR="$out/.promptfoo" \
PROMPTFOO_PYTHON="${PROMPTFOO_PYTHON:-$(command -v python3)}" PROMPTFOO_FAILED_TEST_EXIT_CODE=0 \
HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 \
  "$here/node_modules/.bin/promptfoo" eval -c "$out/promptfooconfig.yaml" --output "$out/results.json" \
  --no-cache --no-write --no-table --no-progress-bar

# 3. Its results back, matched to rows through the metadata the export gave each test.
"$flywheel" results import "$out/results.json"

# 4. The gate: exit 0 pass, 1 fail, 2 nothing to judge; JUnit XML lists the failing rows.
"$flywheel" gate --model-version "${MODEL_VERSION:-my-model}" --junit "$out/junit.xml"
