#!/usr/bin/env bash
# Installs the Debian packages tlsgate needs to build and test, and nothing
# when they are already there (idempotent). apt-get as root, sudo otherwise.
set -euo pipefail

build_pkgs="cmake make gcc pkg-config libssl-dev libuv1-dev libcurl4-openssl-dev libjansson-dev libyaml-dev"
test_pkgs="curl openssl nginx-light clang procps valgrind testssl.sh jq groff-base pebble strace etcd-server etcd-client python3-grpcio haproxy certbot lego"
want="$build_pkgs"
[ "${1:-}" = "--test" ] && want="$build_pkgs $test_pkgs"

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install:$missing" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts nginx and etcd on install where systemd runs; tests start their own.
for svc in nginx etcd haproxy; do
  if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
    $sudo systemctl stop "$svc" || true
  fi
done
