#!/usr/bin/env bash
# images/base/build.sh - builds the root filesystem of moat's default
# workspace image into a tarball (imported by scripts/image as
# localhost/moat/base:latest).
#
#   images/base/build.sh OUTPUT.tar
#
# Debian 12 (bookworm), mmdebstrap --variant=minbase, from this machine's
# own Debian sources: $MOAT_DEBIAN_SOURCES, else
# /etc/apt/sources.list.d/debian.sources, else /etc/apt/sources.list. No
# mirror host is named in this repository. Documentation, manual pages and
# locales are left out; sshd host keys made by the package are removed (each
# workspace gets its own from moatd). The SSH client and server
# configuration of this directory are installed under /etc/ssh/*.d/.
# Needs root (mmdebstrap's root mode) and about a minute.
set -euo pipefail

out=${1:?usage: images/base/build.sh OUTPUT.tar}
here=$(cd "$(dirname "$0")" && pwd)

sources=${MOAT_DEBIAN_SOURCES:-}
if [ -z "$sources" ]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ] && grep -Eq '^[[:space:]]*(deb|Types:)' "$f"; then
      sources=$f
      break
    fi
  done
fi
[ -n "$sources" ] || { echo "build.sh: no Debian sources on this machine (set MOAT_DEBIAN_SOURCES)" >&2; exit 1; }

packages=(
  bash ca-certificates curl git less netcat-openbsd openssh-client
  openssh-server procps sudo vim-tiny
)
ifs_packages=$(IFS=,; echo "${packages[*]}")

mmdebstrap --variant=minbase --mode=root --format=tar \
  --include="$ifs_packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  --customize-hook="upload $here/ssh_config.conf /etc/ssh/ssh_config.d/moat.conf" \
  --customize-hook="upload $here/sshd_config.conf /etc/ssh/sshd_config.d/moat.conf" \
  --customize-hook='chmod 0644 "$1"/etc/ssh/ssh_config.d/moat.conf "$1"/etc/ssh/sshd_config.d/moat.conf' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log' \
  bookworm "$out" "$sources"
