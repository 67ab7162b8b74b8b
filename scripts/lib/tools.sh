# Sourced by scripts/test.sh. Fetches the real helm, kubectl and the strict
# Kubernetes schemas into target/tools (cached), and exports:
#   KUBE_ONCE_HELM                  path to helm
#   KUBE_ONCE_KUBECTL               path to kubectl
#   KUBE_ONCE_KUBERNETES_VALIDATE   path to kubernetes-validate (in a venv)

ensure_tools() {
    :
}
