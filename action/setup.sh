#!/usr/bin/env bash
# The action's first step: the mlgate binary for this runner, written as the step output `bin`.
# A release of the action's ref (uses: OWNER/mlgate@v1) has a prebuilt binary per OS and
# architecture: it is downloaded and its checksum verified (a mismatch fails the step). Without
# one (uses: ./, a branch, an unknown platform), or with build-from-source: true, it is built
# with cargo.
# Environment: ACTION_REF, ACTION_REPOSITORY, GITHUB_SERVER_URL, BUILD_FROM_SOURCE,
# GITHUB_ACTION_PATH, GITHUB_OUTPUT, RUNNER_TEMP; MLGATE_PREBUILT (a binary to use as it is).
set -euo pipefail

out() { echo "bin=$1" >> "$GITHUB_OUTPUT"; echo "mlgate: $1"; }

if [ -n "${MLGATE_PREBUILT:-}" ]; then
  out "$MLGATE_PREBUILT"
  exit 0
fi

target=""
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) target=x86_64-unknown-linux-gnu ;;
  Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-gnu ;;
  Darwin/arm64) target=aarch64-apple-darwin ;;
esac

ref="${ACTION_REF:-${GITHUB_ACTION_REF:-}}"
repository="${ACTION_REPOSITORY:-${GITHUB_ACTION_REPOSITORY:-}}"
why=""
if [ "${BUILD_FROM_SOURCE:-false}" = true ]; then
  why="build-from-source is true"
elif [ -z "$ref" ] || [ -z "$repository" ]; then
  why="the action runs from a path (uses: ./), not a release"
elif [ -z "$target" ]; then
  why="no prebuilt binary for $(uname -s) $(uname -m)"
else
  dir="${RUNNER_TEMP:-/tmp}/mlgate-$ref-$target"
  archive="mlgate-$target.tar.gz"
  url="${GITHUB_SERVER_URL:-https://github.com}/$repository/releases/download/$ref/$archive"
  mkdir -p "$dir"
  if curl -fsSL --retry 3 --retry-delay 2 -o "$dir/$archive" "$url" \
    && curl -fsSL --retry 3 --retry-delay 2 -o "$dir/$archive.sha256" "$url.sha256"; then
    expected="$(awk '{print $1; exit}' "$dir/$archive.sha256")"
    if command -v sha256sum > /dev/null; then
      actual="$(sha256sum "$dir/$archive" | awk '{print $1}')"
    else
      actual="$(shasum -a 256 "$dir/$archive" | awk '{print $1}')"
    fi
    if [ "$expected" != "$actual" ]; then
      echo "::error title=mlgate download::the checksum of $url is $actual, its .sha256 says $expected: refusing the binary"
      exit 1
    fi
    tar -xzf "$dir/$archive" -C "$dir"
    chmod +x "$dir/mlgate"
    echo "mlgate: downloaded $url (sha256 $actual)"
    out "$dir/mlgate"
    exit 0
  fi
  why="no release $ref of $repository has $archive"
fi

echo "mlgate: building from source: $why"
if ! command -v cargo > /dev/null; then
  echo "::error title=mlgate::$why, and there is no cargo to build mlgate with: add a Rust toolchain step (dtolnay/rust-toolchain@stable) before this one, or use a released version (uses: OWNER/mlgate@v1)"
  exit 1
fi
export CARGO_TARGET_DIR="${MLGATE_TARGET_DIR:-$HOME/.cache/mlgate/target}"
cargo build --locked --release --manifest-path "$GITHUB_ACTION_PATH/Cargo.toml" --package mlgate
out "$CARGO_TARGET_DIR/release/mlgate"
