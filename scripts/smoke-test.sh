#!/usr/bin/env bash
# Smoke test of a deployed relay: one GET /health per region, steered with fly-prefer-region.
# See usage() or run with --help.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/smoke-test.sh [--timeout SECONDS] BASE_URL REGION...

For each REGION, GET BASE_URL/health with the header "fly-prefer-region: REGION" (Fly's proxy
then answers from a machine in that region when one runs). A region passes only when the HTTP
status is 200 AND the JSON body's "region" equals REGION; a connection that fails or times out
is a failure too.

Prints one line per region (region, HTTP status, region that answered, machine, pass/FAIL and
why) and a summary line. Exit code: the number of failed regions (0 = all passed; capped at
125), or 2 for bad usage (without a line per region).

  BASE_URL            e.g. https://effect-relay.fly.dev (no redirects are followed: with
                      force_https, an http:// URL fails with status 301)
  REGION              e.g. iad ord fra (letters, digits, '-' and '_')
  --timeout SECONDS   per request, connection included (default $SMOKE_TIMEOUT or 5)
  -h, --help          this text

Needs curl, and node (or jq) to read the JSON.

example: scripts/smoke-test.sh https://effect-relay.fly.dev iad ord
EOF
}

bad_usage() {
  echo "smoke-test: $1" >&2
  echo "usage: scripts/smoke-test.sh [--timeout SECONDS] BASE_URL REGION...  (--help for more)" >&2
  exit 2
}

timeout_s=${SMOKE_TIMEOUT:-5}
positional=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --timeout)
      [ $# -ge 2 ] || bad_usage "--timeout needs a value"
      timeout_s=$2
      shift 2
      ;;
    --timeout=*) timeout_s=${1#--timeout=}; shift ;;
    --) shift; positional+=("$@"); break ;;
    -*) bad_usage "unknown option: $1" ;;
    *) positional+=("$1"); shift ;;
  esac
done

[ ${#positional[@]} -ge 2 ] || bad_usage "need a BASE_URL and at least one REGION"
[[ $timeout_s =~ ^[0-9]+([.][0-9]+)?$ ]] || bad_usage "--timeout must be a number of seconds, got '$timeout_s'"
base_url=${positional[0]%/}
regions=("${positional[@]:1}")
[[ $base_url =~ ^https?://[^[:space:]]+$ ]] || bad_usage "BASE_URL must be an http:// or https:// URL, got '${positional[0]}'"
for region in "${regions[@]}"; do
  [[ $region =~ ^[A-Za-z0-9_-]+$ ]] || bad_usage "not a region name: '$region'"
done
command -v curl >/dev/null 2>&1 || bad_usage "curl is not installed"

# Prints "REGION<TAB>MACHINE" from a /health body, or "!why" when it has no string "region".
if command -v node >/dev/null 2>&1; then
  read_health() {
    node -e '
      let body
      try { body = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")) }
      catch { console.log("!body is not JSON"); process.exit(0) }
      if (body === null || typeof body !== "object" || Array.isArray(body)) console.log("!body is not a JSON object")
      else if (typeof body.region !== "string") console.log("!body has no \"region\" string")
      else console.log(body.region + "\t" + (typeof body.machineId === "string" ? body.machineId : "-"))
    ' "$1"
  }
elif command -v jq >/dev/null 2>&1; then
  read_health() {
    jq -r 'if type != "object" then "!body is not a JSON object"
           elif (.region | type) != "string" then "!body has no \"region\" string"
           else "\(.region)\t\(if (.machineId | type) == "string" then .machineId else "-" end)" end' "$1" 2>/dev/null \
      || echo "!body is not JSON"
  }
else
  bad_usage "needs node or jq to read the JSON body"
fi

# One line of text, at most 100 characters, from a file (curl's error, a response body).
snippet() { tr -s '\r\n\t' '   ' <"$1" | cut -c 1-100 | sed 's/[[:space:]]*$//'; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
for region in "${regions[@]}"; do
  body="$work/body" err="$work/err"
  : >"$body"
  if status=$(curl --silent --show-error --max-time "$timeout_s" --connect-timeout "$timeout_s" \
    --output "$body" --write-out '%{http_code}' \
    --header "fly-prefer-region: $region" --header "accept: application/json" \
    "$base_url/health" 2>"$err"); then
    curl_rc=0
  else
    curl_rc=$?
  fi
  got=-
  machine=-
  why=()
  if [ "$curl_rc" -ne 0 ]; then
    status=000
    why+=("unreachable (curl exit $curl_rc: $(snippet "$err"))")
  else
    parsed=$(read_health "$body")
    if [[ $parsed == '!'* ]]; then
      [ "$status" = 200 ] && why+=("${parsed#!}: $(snippet "$body")")
    else
      got=${parsed%%$'\t'*}
      machine=${parsed#*$'\t'}
    fi
    if [ "$status" != 200 ]; then
      why+=("status $status, want 200: $(snippet "$body")")
    elif [ "$got" != - ] && [ "$got" != "$region" ]; then
      why+=("wrong region: answered by $got")
    fi
  fi
  if [ ${#why[@]} -eq 0 ]; then
    verdict=pass
  else
    verdict="FAIL ${why[*]}"
    failed+=("$region")
  fi
  printf '%-8s status=%s  region=%-8s machine=%-16s %s\n' "$region" "$status" "$got" "$machine" "$verdict"
done

total=${#regions[@]}
if [ ${#failed[@]} -eq 0 ]; then
  echo "smoke-test: all $total regions pass at $base_url"
else
  echo "smoke-test: ${#failed[@]} of $total regions FAILED at $base_url: ${failed[*]}"
fi
# The exit code is the number of failures; past 125 it would collide with the shell's own codes
# (126-255) and wrap to 0 at 256.
n=${#failed[@]}
exit $((n > 125 ? 125 : n))
