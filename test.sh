#!/usr/bin/env bash
# Runs every orch test on this machine: installs what the tests need
# (Debian packages, the lab image), then `go test -race ./...`. Arguments
# replace the default ones, e.g. ./test.sh -run SSH ./engine/.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps
go run ./cmd/orch lab image
if [ $# -eq 0 ]; then
  set -- -race -timeout 20m ./...
fi
go test "$@"
