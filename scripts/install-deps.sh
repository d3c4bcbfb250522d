#!/usr/bin/env bash
# Installs the Debian packages kiln's build and tests use. Idempotent: installs only what is
# missing, and refreshes the package lists only when something is.
set -euo pipefail

PKGS=(
  build-essential      # cc + make for the sandbox helper in native/
  libseccomp-dev       # the sandbox's syscall filter
  busybox-static       # base rootfs for RUN tests
  skopeo umoci podman runc uidmap   # independent readers/runners of what kiln writes
  docker-registry      # a real distribution registry on loopback
  apache2-utils        # htpasswd, for registry basic-auth tests
  openssl              # a signing certificate for the registry token-auth tests
  xz-utils bzip2 zstd pigz          # archive formats ADD unpacks; export benchmarks
  iproute2             # `ip` for network namespace tests
  git                  # git sources (ADD <git>, a repository as the context) and their tests' git daemon
  openssh-server openssh-client   # sshd for git over ssh tests; ssh, ssh-add, ssh-keygen, ssh-agent for --ssh tests
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages (run as root to install): ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Package maintainer scripts must not start services (there is no init system here).
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
fi
trap '[ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The tests start their own sshd on loopback; the machine gets no SSH service from us. Debian's
# unit and init script for sshd both stand down while this file exists.
for p in "${missing[@]}"; do
  [ "$p" = openssh-server ] && touch /etc/ssh/sshd_not_to_be_run
done
exit 0
