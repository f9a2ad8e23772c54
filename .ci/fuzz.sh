#!/usr/bin/env bash
# Every native Go fuzz target of the project, each for FUZZTIME (default 3s in
# CI: about a minute of fuzzing in all, plus the instrumented builds). A
# crash fails the run and leaves its input in the package's
# testdata/fuzz/<Target>/, which `go test` then replays as a regression test.
#   bash .ci/fuzz.sh                  # CI
#   FUZZTIME=5m bash .ci/fuzz.sh      # a long run (the README's "Fuzzing")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export FUZZTIME="${FUZZTIME:-3s}"
bash .ci/fuzz-core.sh
bash .ci/fuzz-ca.sh
# The task functions: poll, issue and sweep bodies through the HTTP handlers.
printf '== %s %s (%s)\n' ./shared/adapter FuzzTaskHandlers "$FUZZTIME"
go test -count=1 -run '^$' -fuzz '^FuzzTaskHandlers$' -fuzztime "$FUZZTIME" -fuzzminimizetime 0 ./shared/adapter | tail -n 2
