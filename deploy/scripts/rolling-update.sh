#!/usr/bin/env bash
# Rolls a new atlas image out to the Kubernetes Deployments of deploy/k8s, runs the
# smoke tests against the API, and rolls every updated Deployment back when a rollout
# or the smoke tests fail.
set -euo pipefail
PROG=rolling-update.sh
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: rolling-update.sh [options] IMAGE

Sets IMAGE (e.g. registry.example.com/atlas:1.4.0) on the atlas container of each
Deployment in turn, waits for each rollout, then runs `atlas smoke` against the API.
If a rollout does not complete or the smoke tests fail, every Deployment updated so
far is rolled back (kubectl rollout undo) and the script exits 1.

Options:
  -n, --namespace NS     (default atlas)
  --deployments "A B"    in this order (default "atlas-processor atlas-projector atlas-api":
                         consumers first, the API last)
  --url URL              the API's base URL for the smoke tests (default $ATLAS_SMOKE_URL);
                         the API key comes from ATLAS_SMOKE_API_KEY (never an argument)
  --skip-smoke           no smoke tests (rollouts are still checked)
  --timeout DURATION     per rollout (default 5m)
  --kubectl BIN          (default kubectl, or $KUBECTL)
  --context CTX          kubectl context
  --atlas BIN            the atlas binary for the smoke tests (default atlas, or $ATLAS_BIN)
  --dry-run              change nothing: print the commands
  -h, --help             this text
USAGE
}

DRY_RUN=0
NS=atlas
DEPLOYMENTS="atlas-processor atlas-projector atlas-api"
URL=${ATLAS_SMOKE_URL:-}
SMOKE=1
TIMEOUT=5m
KUBECTL=${KUBECTL:-kubectl}
CONTEXT=""
ATLAS=${ATLAS_BIN:-atlas}
IMAGE=""

while (($#)); do
  case $1 in
    -n | --namespace) NS=${2:?--namespace needs a value}; shift ;;
    --deployments) DEPLOYMENTS=${2:?--deployments needs a value}; shift ;;
    --url) URL=${2:?--url needs a value}; shift ;;
    --skip-smoke) SMOKE=0 ;;
    --timeout) TIMEOUT=${2:?--timeout needs a value}; shift ;;
    --kubectl) KUBECTL=${2:?--kubectl needs a value}; shift ;;
    --context) CONTEXT=${2:?--context needs a value}; shift ;;
    --atlas) ATLAS=${2:?--atlas needs a value}; shift ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) printf '%s: unknown option %s\n\n' "$PROG" "$1" >&2; usage >&2; exit 2 ;;
    *)
      [[ -z $IMAGE ]] || { printf '%s: one IMAGE only\n' "$PROG" >&2; exit 2; }
      IMAGE=$1 ;;
  esac
  shift
done
[[ -n $IMAGE ]] || { usage >&2; exit 2; }
[[ $IMAGE == *[:@]* ]] || die "IMAGE $IMAGE has no tag or digest: name the version to roll out"
((SMOKE == 0)) || [[ -n $URL ]] || die "--url (or ATLAS_SMOKE_URL) is needed for the smoke tests, or --skip-smoke"
need "$KUBECTL"
((SMOKE == 0 || DRY_RUN == 1)) || need "$ATLAS"

KARGS=(-n "$NS")
if [[ -n $CONTEXT ]]; then KARGS=(--context "$CONTEXT" "${KARGS[@]}"); fi
# k reads (it runs in a dry run too); kw changes something.
k() { "$KUBECTL" "${KARGS[@]}" "$@"; }
kw() { run "$KUBECTL" "${KARGS[@]}" "$@"; }

UPDATED=()
rollback() {
  local i d
  log "rolling back: ${UPDATED[*]:-nothing was updated}"
  for ((i = ${#UPDATED[@]} - 1; i >= 0; i--)); do
    d=${UPDATED[i]}
    kw rollout undo "deployment/$d" || log "rollout undo of $d failed: see kubectl -n $NS rollout history deployment/$d"
    kw rollout status "deployment/$d" --timeout "$TIMEOUT" || log "$d did not settle after the undo"
  done
}

for d in $DEPLOYMENTS; do
  current=$(k get "deployment/$d" -o 'jsonpath={.spec.template.spec.containers[?(@.name=="atlas")].image}') ||
    die "cannot read deployment/$d in namespace $NS"
  [[ -n $current ]] || die "deployment/$d has no container named atlas"
  log "$d: $current -> $IMAGE"
  kw set image "deployment/$d" "atlas=$IMAGE"
  kw annotate "deployment/$d" --overwrite "kubernetes.io/change-cause=rolling-update.sh $IMAGE (from $current)"
  UPDATED+=("$d")
  if ! kw rollout status "deployment/$d" --timeout "$TIMEOUT"; then
    log "the rollout of $d did not complete within $TIMEOUT"
    rollback
    exit 1
  fi
done

if ((SMOKE)); then
  log "smoke tests against $URL"
  # The key stays in the environment (ATLAS_SMOKE_API_KEY), out of the process list.
  if ! run "$ATLAS" smoke --url "$URL"; then
    log "smoke tests failed"
    rollback
    exit 1
  fi
fi
log "rolled out $IMAGE to ${UPDATED[*]}"
