#!/usr/bin/env bash
# Installs the native-app client libraries from the repository the way an app developer would,
# for the end-to-end tests and the demo desk's native app: the Python package with pip into a
# virtual environment (target/clients/venv), and the Node package's development dependencies
# (shell/clients/node/node_modules, from its lock file) plus the package itself into
# target/clients/node_modules. The same virtual environment gets the OpenTelemetry project's
# protocol schema (opentelemetry-proto), which the trace tests' collector reads spans with.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p target/clients
if [ ! -x target/clients/venv/bin/python ]; then
    python3 -m venv target/clients/venv
fi
target/clients/venv/bin/python -m pip install --quiet --disable-pip-version-check "./shell/clients/python[credentials,websocket]"
target/clients/venv/bin/python -m pip install --quiet --disable-pip-version-check "opentelemetry-proto>=1.27,<2"
(cd shell/clients/node && npm ci --no-audit --no-fund --loglevel=error)
npm install --prefix target/clients --no-audit --no-fund --loglevel=error --no-save ./shell/clients/node
