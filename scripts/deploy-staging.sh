#!/usr/bin/env bash
# Deploys the STAGING app (fly.staging.toml), then smoke-tests it: scripts/deploy.sh with that
# config. See --help.
set -euo pipefail

case ${1:-} in
  -h | --help)
    cat <<'EOF'
usage: scripts/deploy-staging.sh [-- FLY_DEPLOY_ARGS...]

scripts/deploy.sh --config fly.staging.toml: fly deploy of the staging app, then
scripts/smoke-test.sh against https://<staging app>.fly.dev in each of its regions; stops at the
first failure. Same environment variables as scripts/deploy.sh (FLY, SMOKE_BASE_URL,
SMOKE_REGIONS, SMOKE_TIMEOUT); scripts/deploy.sh --help describes them.
EOF
    exit 0
    ;;
  --config | --config=* | -c)
    echo "deploy-staging: the config is always fly.staging.toml; use scripts/deploy.sh --config FILE for another" >&2
    exit 2
    ;;
esac

exec "$(dirname "$0")/deploy.sh" --config fly.staging.toml "$@"
