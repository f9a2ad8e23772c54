#!/usr/bin/env bash
# Builds OpenTofu from the Go module proxy once and caches the binary.
# Prints the binary's path. The cache key is the version: a cached binary is
# reused as long as it runs and reports that version.
#
# OpenTofu cannot be installed with `go install` (its go.mod has replace
# directives), so the module is downloaded, copied somewhere writable and built.
set -euo pipefail

version="${TOFU_VERSION:-v1.12.6}"
cache="${CERTPROV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/certprov}"
dir="$cache/tofu-$version"
bin="$dir/tofu"

# A cached binary counts only if it runs and reports exactly this version.
usable() {
  [[ -x "$bin" ]] &&
    TF_CLI_CONFIG_FILE=/dev/null "$bin" version -json 2>/dev/null |
    grep -q "\"terraform_version\": *\"${version#v}\""
}

if usable; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
# Two concurrent runs must not both build: take a lock on the cache dir.
exec 9>"$dir/.lock"
flock 9
if usable; then
  echo "$bin"
  exit 0
fi

echo "building OpenTofu $version (first run only, takes minutes)" >&2
src="$(GOFLAGS=-mod=mod go mod download -json "github.com/opentofu/opentofu@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$src" || ! -d "$src" ]]; then
  echo "build-tofu: go mod download of github.com/opentofu/opentofu@$version gave no directory" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
(cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 10 go build -trimpath \
  -ldflags "-X github.com/opentofu/opentofu/version.dev=no" -o "$bin.tmp" ./cmd/tofu)
mv "$bin.tmp" "$bin"
echo "$bin"
