#!/usr/bin/env bash
# Runs every orch test on this machine: installs what the tests need
# (Debian packages, the lab image), then `go test -race ./...`. Arguments
# replace the default ones, e.g. ./test.sh -run SSH ./engine/.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps
# The lab image is built once (debootstrap needs root); without Docker the
# lab tests skip themselves.
if docker info >/dev/null 2>&1; then
  go run ./cmd/orch lab image
else
  echo "test.sh: no Docker engine: the lab tests will skip" >&2
fi
if [ $# -eq 0 ]; then
  set -- -race -timeout 20m ./...
fi
go test "$@"
