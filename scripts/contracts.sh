#!/usr/bin/env bash
# Machine checks of the documents other teams rely on, with pinned npm tools:
#   docs/asyncapi.yaml        → `asyncapi validate` (@asyncapi/cli)
#   openspec/ change          → `openspec validate … --strict` (@fission-ai/openspec)
# Installs the tools into $SMAP_TOOLS_DIR/npm (default /opt/smap-identity-tools/npm)
# on first use. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

ASYNCAPI_CLI_VERSION=6.2.0
OPENSPEC_VERSION=1.13.2
NPM_DIR="${SMAP_TOOLS_DIR:-/opt/smap-identity-tools}/npm"

installed() { # package version
  [[ -f "$NPM_DIR/node_modules/$1/package.json" ]] &&
    grep -q "\"version\": \"$2\"" "$NPM_DIR/node_modules/$1/package.json"
}

if ! installed @asyncapi/cli "$ASYNCAPI_CLI_VERSION" || ! installed @fission-ai/openspec "$OPENSPEC_VERSION"; then
  echo "[contracts] installing @asyncapi/cli@$ASYNCAPI_CLI_VERSION @fission-ai/openspec@$OPENSPEC_VERSION" >&2
  mkdir -p "$NPM_DIR"
  (cd "$NPM_DIR" && npm install --no-audit --no-fund --silent \
    "@asyncapi/cli@$ASYNCAPI_CLI_VERSION" "@fission-ai/openspec@$OPENSPEC_VERSION")
fi

export ASYNCAPI_TELEMETRY=false OPENSPEC_TELEMETRY=0 DO_NOT_TRACK=1 SUPPRESS_NO_CONFIG_WARNING=1
echo "asyncapi validate docs/asyncapi.yaml"
"$NPM_DIR/node_modules/.bin/asyncapi" validate docs/asyncapi.yaml --fail-severity=warn
echo "openspec validate align-event-driven-architecture --strict"
"$NPM_DIR/node_modules/.bin/openspec" validate align-event-driven-architecture --strict
