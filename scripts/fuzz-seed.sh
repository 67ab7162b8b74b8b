#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/<target>, not committed) from the
# test fixtures and examples, so the fuzzers start from realistic inputs
# instead of from nothing. Idempotent: files are named by content hash.
set -euo pipefail
cd "$(dirname "$0")/.."

seed() { # seed TARGET FILE...
    local target=$1 file
    shift
    mkdir -p "fuzz/corpus/$target"
    for file in "$@"; do
        [[ -f $file ]] || continue
        cp "$file" "fuzz/corpus/$target/$(sha1sum <"$file" | cut -c1-40)"
    done
}

seed_text() { # seed_text TARGET TEXT: one corpus entry from a string
    local target=$1 text=$2
    mkdir -p "fuzz/corpus/$target"
    printf '%s' "$text" >"fuzz/corpus/$target/$(printf '%s' "$text" | sha1sum | cut -c1-40)"
}

shopt -s nullglob globstar
json=(tests/fixtures/**/*.json)
manifests=(tests/fixtures/**/*.yaml tests/fixtures/**/*.yml examples/**/*.yaml examples/**/*.yml)

seed admission "${json[@]}"
seed preview_yaml "${manifests[@]}" "${json[@]}"

# annotations: `name=value` lines, from every kube-once.io/ annotation
# written in a manifest, plus the contract's shapes.
for file in "${manifests[@]}"; do
    lines=$(sed -n 's/^ *kube-once\.io\/\([a-z-]*\): *\(.*\)$/\1=\2/p' "$file" | sed 's/^\([a-z-]*\)="\(.*\)"$/\1=\2/')
    [[ -n $lines ]] && seed_text annotations "$lines"
done
seed_text annotations $'run=flask db upgrade'
seed_text annotations $'run=["sh","-c","rails db:migrate && rails db:seed"]\ncontainer=web\ntimeout=10m\nrecord=none'
seed_text annotations $'run=alembic upgrade head\ndatabase-url=postgresql://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST)/app\nlock-url-env=DIRECT_URL\nlock-name=shared\nkey=v42'
seed_text annotations $'preemptible=gke-spot'
seed_text annotations $'run=manage.py migrate\npreemptible=true\ndatabase-url-env=DB'

# database_url: the URL forms apps write.
for url in \
    'postgres://app:s%40cret@db.example:5432/app?sslmode=verify-full&sslrootcert=/etc/ca.pem' \
    'postgresql+psycopg2://superset:change-me@postgres.analytics.svc/superset' \
    'postgresql://app@%2Fvar%2Frun%2Fpostgresql/app' \
    'mysql+pymysql://root:@127.0.0.1:3306/test?charset=utf8mb4' \
    'mariadb://app:pw@[::1]:3307/app?ssl-mode=REQUIRED' \
    'sqlite:////var/lib/app/app.db' \
    'postgresql://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST):5432/app'; do
    seed_text database_url "$url"
done

echo "fuzz corpora seeded: $(find fuzz/corpus -type f | wc -l) files in $(find fuzz/corpus -mindepth 1 -maxdepth 1 -type d | wc -l) targets"
