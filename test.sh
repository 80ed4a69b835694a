#!/usr/bin/env bash
# Runs every orch test on this machine: installs what the tests need
# (Debian packages, the lab image), then `go test ./...`. Extra arguments go
# to go test, e.g. ./test.sh -race or ./test.sh -run SSH ./engine/.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps
go run ./cmd/orch lab image
if [ $# -eq 0 ]; then
  set -- ./...
fi
go test "$@"
