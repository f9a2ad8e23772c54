#!/usr/bin/env bash
# Builds the schema-only provider (.ci/tofu/provider) once per version of its
# source and lays it out as a filesystem_mirror for tofu: one executable named
# terraform-provider-google (serves the hashicorp/google schema JSON), one
# named terraform-provider-archive (serves archive_file) and one named
# terraform-provider-time (serves time_sleep). Prints the mirror
# directory. The cache key is a hash of the provider's source files.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/provider"
cache="${CERTPROV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/certprov}"
google_version="${CERTPROV_GOOGLE_PROVIDER_VERSION:-7.45.0}"
archive_version="${CERTPROV_ARCHIVE_PROVIDER_VERSION:-2.7.1}"
time_version="${CERTPROV_TIME_PROVIDER_VERSION:-0.13.1}"

hash="$(cd "$src" && cat go.mod go.sum $(ls ./*.go | sort) | sha256sum | cut -c1-16)"
dir="$cache/tofu-provider-$hash"
platform="$(go env GOOS)_$(go env GOARCH)"
mirror="$dir/mirror"
google_bin="$mirror/registry.opentofu.org/hashicorp/google/$google_version/$platform/terraform-provider-google_v$google_version"
archive_bin="$mirror/registry.opentofu.org/hashicorp/archive/$archive_version/$platform/terraform-provider-archive_v$archive_version"
time_bin="$mirror/registry.opentofu.org/hashicorp/time/$time_version/$platform/terraform-provider-time_v$time_version"

if [[ -x "$google_bin" && -x "$archive_bin" && -x "$time_bin" ]]; then
  echo "$mirror"
  exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [[ ! -x "$google_bin" || ! -x "$archive_bin" || ! -x "$time_bin" ]]; then
  echo "building the schema-only provider ($hash)" >&2
  (cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 10 go build -trimpath -o "$dir/provider.tmp" .)
  mkdir -p "$(dirname "$google_bin")" "$(dirname "$archive_bin")" "$(dirname "$time_bin")"
  # The executable's name decides which provider it serves.
  cp "$dir/provider.tmp" "$archive_bin"
  cp "$dir/provider.tmp" "$time_bin"
  mv "$dir/provider.tmp" "$google_bin"
fi
echo "$mirror"
