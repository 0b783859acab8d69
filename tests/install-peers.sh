#!/usr/bin/env bash
# Installs the real peers the integration tests drive (Debian packages), when missing.
# Idempotent; needs root for apt-get. Without root it only reports what is missing.
set -euo pipefail
DEBS=(swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl getmail6)
missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "install-peers: missing Debian packages (need root): ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
