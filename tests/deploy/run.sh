#!/usr/bin/env bash
# Offline checks of deploy/ (manifests, Prometheus rules, Grafana dashboard,
# kustomization, Containerfile, TLS + basic auth setup). Needs node + npm (npm packages
# come from package-lock.json), promtool (Debian package prometheus), openssl, htpasswd
# (apache2-utils) and, optionally, kubectl and python3-bcrypt.
# Exit status: non-zero if any check fails.
set -euo pipefail
cd "$(dirname "$0")"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "deploy tests: $tool not found (scripts/setup-deps.sh installs nodejs and npm)" >&2
    exit 1
  fi
done

# Install the pinned packages when node_modules is missing or older than the lock file.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

exec node validate.mjs "$@"
