#!/usr/bin/env bash
# The action's first step: the mlgate binary for this runner, written as the step output `bin`.
# The action's own checkout says which release it is: the `[workspace.package] version` of
# $GITHUB_ACTION_PATH/Cargo.toml. Whatever ref the caller wrote (@v1, @v1.2.3, @<commit sha>),
# the binary of release v<version> for this OS and architecture is downloaded and checked
# against its .sha256; a missing archive or checksum, a mismatch, or an archive whose `mlgate`
# is not a regular file fails the step. It is built with cargo only with build-from-source: true
# or when the action runs from a path (uses: ./).
# Environment: ACTION_REF, ACTION_REPOSITORY, GITHUB_SERVER_URL, BUILD_FROM_SOURCE,
# GITHUB_ACTION_PATH, GITHUB_OUTPUT, RUNNER_TEMP; MLGATE_PREBUILT (a binary to use as it is).
set -euo pipefail

out() { echo "bin=$1" >> "$GITHUB_OUTPUT"; echo "mlgate: $1"; }
fail() { echo "::error title=$1::$2"; exit 1; }

if [ -n "${MLGATE_PREBUILT:-}" ]; then
  out "$MLGATE_PREBUILT"
  exit 0
fi

supported="Linux x86_64 (ubuntu-latest), Linux arm64 (ubuntu-24.04-arm) and macOS arm64 (macos-latest)"
os="$(uname -s)"
arch="$(uname -m)"
target=""
case "$os/$arch" in
  Linux/x86_64) target=x86_64-unknown-linux-musl ;;
  Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-musl ;;
  Darwin/arm64) target=aarch64-apple-darwin ;;
  # mlgate neither ships nor builds for Windows: building from source would end in compile errors.
  MINGW* | MSYS* | CYGWIN* | Windows*) fail "mlgate unsupported runner" "mlgate does not run on $os $arch: it runs on $supported" ;;
esac

ref="${ACTION_REF:-${GITHUB_ACTION_REF:-}}"
repository="${ACTION_REPOSITORY:-${GITHUB_ACTION_REPOSITORY:-}}"
why=""
if [ "${BUILD_FROM_SOURCE:-false}" = true ]; then
  why="build-from-source is true"
elif [ -z "$ref" ] || [ -z "$repository" ]; then
  why="the action runs from a path (uses: ./), not a release"
fi

if [ -z "$why" ]; then
  if [ -z "$target" ]; then
    fail "mlgate unsupported runner" "no mlgate binary for $os $arch: releases have $supported"
  fi
  manifest="$GITHUB_ACTION_PATH/Cargo.toml"
  version="$(awk '
    /^\[/ { section = $0; next }
    section == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
  ' "$manifest" 2> /dev/null || true)"
  if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    fail "mlgate download" "cannot read the [workspace.package] version of $manifest (read: '$version')"
  fi
  tag="v$version"
  dir="${RUNNER_TEMP:-/tmp}/mlgate-$tag-$target"
  archive="mlgate-$target.tar.gz"
  url="${GITHUB_SERVER_URL:-https://github.com}/$repository/releases/download/$tag/$archive"
  # A self-hosted runner keeps RUNNER_TEMP: nothing of an earlier download is trusted.
  rm -rf "$dir"
  mkdir -p "$dir"
  if ! curl -fsSL --retry 3 --retry-delay 2 -o "$dir/$archive" "$url"; then
    fail "mlgate download" "cannot download $url (the action at $ref is version $version: release $tag of $repository has no $archive); set build-from-source: true, with a Rust toolchain, to build mlgate instead"
  fi
  if ! curl -fsSL --retry 3 --retry-delay 2 -o "$dir/$archive.sha256" "$url.sha256"; then
    fail "mlgate download" "release $tag of $repository has $archive but no $archive.sha256 to check it against ($url.sha256): refusing an unverified binary"
  fi
  # sha256sum writes lower case, other tools upper case: compared case-insensitively.
  expected="$(awk '{print tolower($1); exit}' "$dir/$archive.sha256")"
  if command -v sha256sum > /dev/null; then
    actual="$(sha256sum "$dir/$archive" | awk '{print tolower($1)}')"
  else
    actual="$(shasum -a 256 "$dir/$archive" | awk '{print tolower($1)}')"
  fi
  if [ "$expected" != "$actual" ]; then
    fail "mlgate download" "the checksum of $url is $actual, its .sha256 says ${expected:-nothing}: refusing the binary"
  fi
  # Only the member `mlgate`, and only as a regular file: a symbolic link could point anywhere.
  if ! tar -xzf "$dir/$archive" -C "$dir" mlgate; then
    fail "mlgate download" "$url holds no file mlgate"
  fi
  if [ -L "$dir/mlgate" ] || [ ! -f "$dir/mlgate" ]; then
    fail "mlgate download" "mlgate in $url is not a regular file: refusing the binary"
  fi
  chmod +x "$dir/mlgate"
  echo "mlgate: downloaded $url (sha256 $actual)"
  out "$dir/mlgate"
  exit 0
fi

echo "mlgate: building from source: $why"
if ! command -v cargo > /dev/null; then
  fail "mlgate" "$why, and there is no cargo to build mlgate with: add a Rust toolchain step (dtolnay/rust-toolchain@stable) before this one, or use a released version (uses: OWNER/mlgate@v1)"
fi
export CARGO_TARGET_DIR="${MLGATE_TARGET_DIR:-$HOME/.cache/mlgate/target}"
# Without GITHUB_SHA: it is the caller's commit, not mlgate's, and the binary would give it as
# its own revision (`mlgate_build_info`).
env -u GITHUB_SHA cargo build --locked --release --manifest-path "$GITHUB_ACTION_PATH/Cargo.toml" --package mlgate
# cargo builds for CARGO_BUILD_TARGET, when the runner sets it, into a folder of that name.
out "$CARGO_TARGET_DIR/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release/mlgate"
