#!/usr/bin/env bash
# Runs each fuzz target of the core packages (notification decoder, profile
# rendering and variable expansion through BuildRequestInfo, SPKI/signature
# verification and CSR assembly) for FUZZTIME each (default 4s: about 30 s of
# fuzzing in all, plus the instrumented builds). A crash fails the script; Go
# writes the failing input to the package's testdata/fuzz/<Target>/, where it
# becomes a seed that `go test` replays from then on.
#   bash .ci/fuzz-core.sh                 # CI
#   FUZZTIME=60s bash .ci/fuzz-core.sh    # a long run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
fuzztime="${FUZZTIME:-4s}"
targets=(
  ./shared/notification:FuzzDecode
  ./shared/profile:FuzzRender
  ./shared/csr:FuzzParseKey
  ./shared/csr:FuzzVerify
  ./shared/csr:FuzzBuildAndAssemble
  ./shared/csr:FuzzAssemble
)
for t in "${targets[@]}"; do
  pkg="${t%%:*}" name="${t##*:}"
  printf '== %s %s (%s)\n' "$pkg" "$name" "$fuzztime"
  out="$(mktemp)"
  corpus="$pkg/testdata/fuzz/$name"
  before="$(ls "$corpus" 2>/dev/null | sort || true)"
  # -fuzzminimizetime 0: see .ci/fuzz-ca.sh (minimizing stalls short runs).
  if ! go test -count=1 -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 0 "$pkg" >"$out" 2>&1; then
    cat "$out"
    after="$(ls "$corpus" 2>/dev/null | sort || true)"
    # Go 1.26's coordinator deadline race (golang/go#75804): no input written.
    if [[ "$before" == "$after" ]] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out"; then
      echo "fuzz-core: $name: ignored the fuzz coordinator's deadline race (golang/go#75804): no failing input" >&2
      rm -f "$out"
      continue
    fi
    rm -f "$out"
    echo "fuzz-core: $name in $pkg failed" >&2
    exit 1
  fi
  grep -E '^fuzz: elapsed' "$out" | tail -1 || true
  rm -f "$out"
done
