#!/usr/bin/env bash
# Installs what the build needs and is missing: Debian packages, then a Python venv outside the repo holding the
# pinned torch wheel (LibTorch) and the test oracle's packages. Idempotent: with everything present it only
# checks and returns within a second or two.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/versions.env"

sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

stamp="$AGORA_VENV/.agora-pip-stamp"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$PIP_PACKAGES" ]]; then
  echo "bootstrap: installing $PIP_PACKAGES into $AGORA_VENV"
  python3 -m venv "$AGORA_VENV"
  "$AGORA_VENV/bin/pip" install -q --disable-pip-version-check $PIP_PACKAGES
  echo "$PIP_PACKAGES" > "$stamp"
fi
