#!/usr/bin/env bash
# Creates the Python virtual environment that the executor integration tests use
# (coflux-agent/tests/executors/python_adapter.rs), with the real `coflux==0.12.0` package.
# Idempotent: re-running only checks that the right version is installed.
#
# Location: $COFLUX_TEST_VENV, or <repository root>/target/python-venv.
# Python:   $PYTHON, or python3.
set -euo pipefail

root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
venv="${COFLUX_TEST_VENV:-$root/target/python-venv}"
python="${PYTHON:-python3}"
version="0.12.0"

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv"
  "$python" -m venv "$venv"
fi

installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("coflux"))' 2>/dev/null || true)"
if [ "$installed" != "$version" ]; then
  echo "installing coflux==$version into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "coflux==$version"
fi

echo "ready: $venv/bin/python (coflux $version)"
