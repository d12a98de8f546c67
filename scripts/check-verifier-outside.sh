#!/usr/bin/env bash
# Builds and tests testkit/verifier-outside/ as a crate outside the planb workspace, in a
# temporary folder with path dependencies on cognito-verifier (and testkit, for moto): a team's
# own service, using only the verifier's root API to guard axum routes and verify real tokens
# from moto's Cognito. Cargo.lock comes from the workspace so the versions are the ones tested
# there, and the workspace's target/ is shared so what is already built is not built again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/testkit/verifier-outside/." "$work/"
sed -i "s|@ROOT@|$root|g" "$work/Cargo.toml"
cp "$root/Cargo.lock" "$work/Cargo.lock"
cd "$work"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo fmt --check
cargo clippy --all-targets --offline -- -D warnings
cargo test --offline
