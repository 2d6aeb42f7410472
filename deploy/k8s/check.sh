#!/usr/bin/env bash
# Checks the Kubernetes manifests of deploy/k8s offline (no cluster):
#   1. renders the base and every overlay with `kubectl kustomize`;
#   2. validates every rendered object against the Kubernetes and prometheus-operator schemas, unknown
#      fields rejected: each object becomes a typed TypeScript literal checked by `tsc --noEmit`
#      (npm kubernetes-models, @kubernetes-models/prometheus-operator), plus the models' validate();
#      the Prometheus adapter rule file likewise against its config's shape;
#   3. asserts the cross-references (check/validate.mjs): probes on /readyz and /healthz of the admin
#      port by name, listeners (env) on the declared ports, Service/PDB/spread selectors matching the pod
#      labels and Services targeting the proxy's ports, the HPA's target and its custom metric's adapter
#      rule, the ServiceMonitor's port on the Service, the security context, the grace period against
#      Reaper:Drain:Period + CloseTimeout of the ConfigMap's reaper.json, memory against MaxConnections;
#   4. runs every ConfigMap's reaper.json through `ReaperProxy --check-config` (builds the proxy into a
#      cache directory, or uses PROXY_DLL);
#   5. self-test: misspelled fields (`replica`, `intervall`, `matchLabel`) and broken cross-references
#      must each make step 2/3 fail with the expected message.
#
#   deploy/k8s/check.sh              all of the above
#   deploy/k8s/check.sh --self-test  only the self-test
#
# Needs kubectl, node + npm (the npm registry, the first time: packages are cached in
# ${REAPER_K8S_CHECK_CACHE:-~/.cache/reaperproxy/k8s-check}) and the .NET SDK. Exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

mode=all
case "${1:-}" in
    "") ;;
    --self-test) mode=self-test ;;
    *) echo "usage: deploy/k8s/check.sh [--self-test]" >&2; exit 2 ;;
esac

k8s=deploy/k8s
# Name=directory of every rendering; an adapter rule file goes with the overlay whose HPA needs it.
renderings=(base=$k8s/base edge=$k8s/overlays/edge edge-connections=$k8s/overlays/edge-connections sidecar=$k8s/overlays/sidecar)
adapters=(edge-connections=$k8s/overlays/edge-connections/prometheus-adapter-rules.yaml)

for tool in kubectl node npm dotnet; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check.sh: $tool not found on PATH" >&2
        exit 2
    fi
done

run() {
    echo "+ $*"
    "$@"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ---- npm packages, cached by the hash of package-lock.json ----------------------------------------------
cache="${REAPER_K8S_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reaperproxy/k8s-check}"
lock_hash="$(sha256sum "$k8s/check/package-lock.json" | cut -c1-16)"
modules="$cache/$lock_hash"
if [[ ! -f "$modules/.installed" ]]; then
    echo "== installing npm packages into $modules ($(tr -d '\n ' < "$k8s/check/package.json" | grep -o '"dependencies":{[^}]*}'))"
    rm -rf "$modules"
    mkdir -p "$modules"
    cp "$k8s/check/package.json" "$k8s/check/package-lock.json" "$modules/"
    if ! (cd "$modules" && npm ci --no-audit --no-fund --loglevel=error --fetch-retries=1 --fetch-timeout=30000 > "$tmp/npm.log" 2>&1); then
        cat "$tmp/npm.log" >&2
        echo "check.sh: npm ci failed: the npm registry ($(npm config get registry)) must be reachable the first time (packages: $k8s/check/package.json)" >&2
        rm -rf "$modules"
        exit 2
    fi
    touch "$modules/.installed"
fi
echo "== node $(node --version), typescript $(node -p "require('$modules/node_modules/typescript/package.json').version"), kubernetes-models $(node -p "require('$modules/node_modules/kubernetes-models/package.json').version"), kubectl $(kubectl version --client 2>/dev/null | awk '/Kustomize/ {print "kustomize " $3}')"

# The validator and the TypeScript it emits live in a work directory beside the cached node_modules (ES
# modules and tsc resolve packages from the importing file's directory).
work="$tmp/check"
mkdir -p "$work"
ln -s "$modules/node_modules" "$work/node_modules"
cp "$k8s/check/validate.mjs" "$work/validate.mjs"

render() { # NAME DIR -> $tmp/NAME.yaml
    echo "+ kubectl kustomize $2 > $tmp/$1.yaml"
    kubectl kustomize "$2" > "$tmp/$1.yaml"
}

validate() { # OUTDIR NAME=FILE... (with every adapter rule file; a rendering NAME or NAME#N takes NAME's)
    local out="$1"; shift
    local args=() spec a
    for spec in "$@"; do
        args+=("$spec")
    done
    for a in "${adapters[@]}"; do
        args+=(--adapter "$a")
    done
    node "$work/validate.mjs" "$out" "${args[@]}"
}

for r in "${renderings[@]}"; do
    render "${r%%=*}" "${r#*=}"
done

# ---- self-test: each mutation of a good rendering must fail with the expected message ------------------
self_test() {
    echo "== self-test: broken manifests must be rejected"
    local failures=0 n=0
    # name | rendering | sed script applied to its YAML | text the failure must contain
    local cases=(
        "misspelled replicas|sidecar|s/^  replicas: /  replica: /|'\"replica\"' does not exist in type 'IDeploymentSpec'"
        "misspelled ServiceMonitor interval|base|s/^    interval: 15s/    intervall: 15s/|'\"intervall\"' does not exist in type"
        "misspelled PDB matchLabels|base|/^kind: PodDisruptionBudget/,/^---/s/matchLabels:/matchLabel:/|'\"matchLabel\"' does not exist in type 'ILabelSelector'"
        "wrong type (port as a list)|base|s/^    port: 80$/    port: [80]/|is not assignable to type"
        "readiness probe on /ready|base|s#path: /readyz#path: /ready#|readinessProbe.httpGet.path is '/ready'"
        "liveness probe on the public port|base|/livenessProbe:/,/periodSeconds/s/port: admin/port: http/|must be the admin port by name"
        "grace period too short|base|s/terminationGracePeriodSeconds: 30/terminationGracePeriodSeconds: 20/|must exceed preStop 5s + Drain:Period 10s + CloseTimeout 5s"
        "HPA targets another Deployment|base|/scaleTargetRef:/,/name:/s/name: reaperproxy$/name: reaper-proxy/|scaleTargetRef apps/v1/Deployment/reaper-proxy is not"
        "ServiceMonitor port not on the Service|base|/^kind: ServiceMonitor/,\$s/^    port: admin/    port: metrics/|endpoint port 'metrics' is not a port name"
        "PDB selector off the pod labels|base|/^kind: PodDisruptionBudget/,/^---/s/app.kubernetes.io\\/name: reaperproxy/app.kubernetes.io\\/name: reaper/|selector matches no ReaperProxy pod"
        "Service targeting the app, not the proxy|sidecar|/^kind: Service/,/^---/s/targetPort: http/targetPort: 3000/|port 'http' targets '3000', which no container"
        "admin listener on loopback|base|s#value: http://0.0.0.0:9464#value: http://127.0.0.1:9464#|binds 127.0.0.1, not all interfaces"
        "writable root filesystem|base|s/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/|readOnlyRootFilesystem must be true"
        "HPA metric without adapter rule|edge-connections|s/name: reaper_connections_active/name: reaper_connections_open/|metric 'reaper_connections_open' (Pods) is served by no Prometheus adapter rule"
    )
    # All mutants in one validator run (one tsc), each as its own rendering NAME#N; then each case's
    # errors are picked out by that prefix.
    local c name rendering script expected out specs=() mine
    for c in "${cases[@]}"; do
        IFS='|' read -r name rendering script expected <<<"$c"
        n=$((n + 1))
        sed -e "$script" "$tmp/$rendering.yaml" > "$tmp/mutant-$n.yaml"
        specs+=("$rendering#$n=$tmp/mutant-$n.yaml")
    done
    if out="$(validate "$work/self-test" "${specs[@]}" 2>&1)"; then
        echo "  FAIL  the validator accepted every mutant"
        return 1
    fi
    n=0
    for c in "${cases[@]}"; do
        IFS='|' read -r name rendering script expected <<<"$c"
        n=$((n + 1))
        mine="$(grep -F -- "error: $rendering#$n: " <<<"$out" || true)"
        if cmp -s "$tmp/$rendering.yaml" "$tmp/mutant-$n.yaml"; then
            echo "  FAIL  $name: the mutation changed nothing in $rendering (sed '$script')"
            failures=$((failures + 1))
        elif [[ -z "$mine" ]]; then
            echo "  FAIL  $name: accepted"
            failures=$((failures + 1))
        elif grep -qF -- "$expected" <<<"$mine"; then
            echo "  ok    $name: rejected: $(grep -F -- "$expected" <<<"$mine" | head -n 1 | sed "s/^ *error: $rendering#$n: /$rendering: /")"
        else
            echo "  FAIL  $name: rejected, but not with \"$expected\":"
            sed 's/^/        /' <<<"$mine"
            failures=$((failures + 1))
        fi
    done
    if ((failures)); then
        echo "self-test: $failures of $n case(s) failed" >&2
        return 1
    fi
    echo "  self-test: all $n broken manifests rejected as expected"
}

if [[ "$mode" == self-test ]]; then
    self_test
    exit
fi

# ---- schemas and cross-references -----------------------------------------------------------------------
echo "== schemas and cross-references"
specs=()
for r in "${renderings[@]}"; do
    specs+=("${r%%=*}=$tmp/${r%%=*}.yaml")
done
echo "+ node $k8s/check/validate.mjs ${specs[*]}"
validate "$work/out" "${specs[@]}"

# ---- every ConfigMap's reaper.json through --check-config --------------------------------------------------
echo "== reaper.json through --check-config"
dll="${PROXY_DLL:-}"
if [[ -z "$dll" ]]; then
    artifacts="$cache/proxy-build"
    echo "+ dotnet build src/ReaperProxy -c Release --artifacts-path $artifacts"
    # Inside `dotnet test` the environment carries the outer MSBuild's paths; a nested build must not
    # inherit them. The separate artifacts path keeps this build out of src/ReaperProxy/bin and obj.
    if ! env -u MSBUILD_EXE_PATH -u MSBuildExtensionsPath -u MSBuildSDKsPath -u MSBuildLoadMicrosoftTargetsReadOnly \
        dotnet build src/ReaperProxy -c Release --artifacts-path "$artifacts" -nologo -v q > "$tmp/build.log" 2>&1; then
        cat "$tmp/build.log" >&2
        echo "check.sh: building the proxy failed" >&2
        exit 1
    fi
    dll="$artifacts/bin/ReaperProxy/release/ReaperProxy.dll"
fi
status=0
while IFS=$'\t' read -r owner file; do
    echo "+ dotnet ReaperProxy.dll --check-config $file   ($owner)"
    if out="$(dotnet "$dll" --check-config "$file" 2>&1)"; then
        sed 's/^/  /' <<<"$out"
    else
        sed 's/^/  /' <<<"$out"
        echo "  error: $owner: reaper.json rejected by --check-config"
        status=1
    fi
done < "$work/out/configs.txt"
if ((status)); then
    exit 1
fi
# And --check-config does reject a bad file (a misspelled key), so a pass above means something.
sed 's/"PingInterval"/"PingIntervall"/' "$k8s/base/reaper.json" > "$tmp/bad-reaper.json"
if out="$(dotnet "$dll" --check-config "$tmp/bad-reaper.json" 2>&1)"; then
    echo "check.sh: --check-config accepted a reaper.json with 'PingIntervall'" >&2
    exit 1
fi
echo "  ok: a reaper.json with a misspelled key is rejected: $(grep -m1 PingIntervall <<<"$out")"

self_test

echo "deploy/k8s: all checks passed"
