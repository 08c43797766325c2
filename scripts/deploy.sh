#!/usr/bin/env bash
# Deploys the relay to Fly with a config file, then smoke-tests every region it runs in.
# See usage() or run with --help.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/deploy.sh [--config FILE] [-- FLY_DEPLOY_ARGS...]

1. fly deploy --config FILE [FLY_DEPLOY_ARGS...]   (rolling: each machine drains on SIGINT)
2. scripts/smoke-test.sh https://<app>.fly.dev REGION...   for every region the app runs in
Stops at the first step that fails and exits with its code: fly's, or the smoke test's (the
number of regions that failed).

  --config FILE   the Fly config (default fly.toml; scripts/deploy-staging.sh passes
                  fly.staging.toml); the app name is read from its `app = "..."` line
  -h, --help      this text
  -- ARGS         passed to `fly deploy` as they are (e.g. -- --image-label v42)

environment:
  FLY             the flyctl command (default: fly, else flyctl)
  SMOKE_BASE_URL  URL to smoke-test (default https://<app>.fly.dev)
  SMOKE_REGIONS   regions to smoke-test, space- or comma-separated (default: the regions of
                  the app's started machines from `fly machine list`, else primary_region)
  SMOKE_TIMEOUT   seconds per smoke request (default 5)

Secrets are set once per app with `fly secrets set` (see the config file), never here.
EOF
}

bad_usage() {
  echo "deploy: $1" >&2
  echo "usage: scripts/deploy.sh [--config FILE] [-- FLY_DEPLOY_ARGS...]  (--help for more)" >&2
  exit 2
}

config=fly.toml
deploy_args=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --config | -c)
      [ $# -ge 2 ] || bad_usage "$1 needs a file"
      config=$2
      shift 2
      ;;
    --config=*) config=${1#--config=}; shift ;;
    --) shift; deploy_args=("$@"); break ;;
    *) bad_usage "unknown argument: $1" ;;
  esac
done

# Paths are relative to the repository root (the Docker build context), wherever this runs from.
cd "$(dirname "$0")/.."
[ -f "$config" ] || bad_usage "no such config file: $config"

fly=${FLY:-}
if [ -z "$fly" ]; then
  if command -v fly >/dev/null 2>&1; then fly=fly
  elif command -v flyctl >/dev/null 2>&1; then fly=flyctl
  else bad_usage "flyctl is not installed (or set FLY to its path)"
  fi
fi

# A top-level `key = "value"` (or 'value') from the config, before its first [section].
toml_top() {
  sed -n -E '/^[[:space:]]*\[/q; s/^[[:space:]]*'"$1"'[[:space:]]*=[[:space:]]*["'"'"']([^"'"'"']+)["'"'"'].*$/\1/p' "$config" | head -n 1
}
app=$(toml_top app)
[ -n "$app" ] || bad_usage "no app = \"...\" line in $config"

echo "deploy: $fly deploy --config $config ${deploy_args[*]}"
if "$fly" deploy --config "$config" ${deploy_args[@]+"${deploy_args[@]}"}; then
  :
else
  rc=$?
  echo "deploy: FAILED: fly deploy exited $rc; smoke test not run" >&2
  exit "$rc"
fi

base_url=${SMOKE_BASE_URL:-https://$app.fly.dev}
regions_text=${SMOKE_REGIONS:-}
if [ -z "$regions_text" ]; then
  # Distinct regions of the app's started machines, read with node from fly's JSON.
  if machines=$("$fly" machine list --app "$app" --json 2>/dev/null); then
    regions_text=$(printf '%s' "$machines" | node -e '
      let text = ""
      process.stdin.on("data", (c) => (text += c)).on("end", () => {
        try {
          const list = JSON.parse(text)
          const regions = new Set(list.filter((m) => m && m.state === "started").map((m) => m.region).filter(Boolean))
          console.log([...regions].sort().join(" "))
        } catch { console.log("") }
      })' || true)
  fi
fi
if [ -z "$regions_text" ]; then
  regions_text=$(toml_top primary_region)
  echo "deploy: no started machines listed; smoke-testing primary_region only"
fi
read -r -a regions <<<"${regions_text//,/ }"
[ ${#regions[@]} -gt 0 ] || bad_usage "no region to smoke-test (set SMOKE_REGIONS)"

echo "deploy: smoke test: $base_url ${regions[*]}"
if scripts/smoke-test.sh "$base_url" "${regions[@]}"; then
  echo "deploy: done: $app deployed and every region answers"
else
  rc=$?
  echo "deploy: FAILED: smoke test exited $rc ($rc failing region(s), or 2 for bad usage)" >&2
  exit "$rc"
fi
