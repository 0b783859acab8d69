#!/usr/bin/env bash
# Installs the real peers the integration tests drive (Debian packages), when missing.
# Idempotent; needs root for apt-get. Without root it only reports what is missing.
set -euo pipefail
DEBS=(swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl getmail6)
# Postfix (peer MTA, smtp-sink), NSD (authoritative DNS) and Unbound (validating resolver):
# the tests run their own instances on loopback (tests/integration/{postfixpeer,dnsserver}.py).
DEBS+=(postfix nsd unbound)
# Synchronising IMAP clients driven by tests/integration/test_imap_clients_sync.py.
DEBS+=(isync offlineimap3)
# fail2ban-regex checks our shipped filter against the daemon's failed-login lines
# (tests/integration/test_master_log.py).
DEBS+=(fail2ban)
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
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  # Keep the packages' system services (Postfix on 25, NSD and Unbound on 53, fail2ban)
  # from starting.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
