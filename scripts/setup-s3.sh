#!/usr/bin/env bash
# Creates the Python virtual environment with moto's S3-compatible server (`moto_server`),
# which coflux-server/tests/blobs_s3.rs starts on 127.0.0.1 to test the S3 blob store.
# Idempotent: re-running only checks that the right version is installed.
#
# Location: $COFLUX_S3_VENV, or <repository root>/target/s3-venv.
# Python:   $PYTHON, or python3.
set -euo pipefail

root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
venv="${COFLUX_S3_VENV:-$root/target/s3-venv}"
python="${PYTHON:-python3}"
version="5.2.5"

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv"
  "$python" -m venv "$venv"
fi

installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)"
if [ "$installed" != "$version" ] || [ ! -x "$venv/bin/moto_server" ]; then
  echo "installing moto[server]==$version into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$version"
fi

echo "ready: $venv/bin/moto_server (moto $version)"
