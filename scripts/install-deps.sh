#!/usr/bin/env bash
# Installs what polarbackup's tests need on Debian 12, as root: PostgreSQL (initdb) and the
# official Alibaba Cloud Python SDKs used as black-box clients. Idempotent; silent when
# everything is already there.
set -euo pipefail

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

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "installing python3 and pip"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3 python3-pip >/dev/null
fi

# module to import -> exact distribution pin (the versions PROTOCOL.md's captures were made with)
PY_PACKAGES=(
    "alibabacloud_polardb20170801:alibabacloud-polardb20170801==9.2.1"
    "aliyunsdkcore:aliyun-python-sdk-core==2.16.1"
    "aliyunsdkpolardb:aliyun-python-sdk-polardb==1.8.58"
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
