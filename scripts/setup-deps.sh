#!/usr/bin/env bash
# The one place that installs NetProbe's system packages (Debian 12).
# Idempotent: it installs only what is missing, so repeated runs are cheap.
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config
  clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libcpp-httplib-dev libyaml-cpp-dev libssl-dev libcrypt-dev libsqlite3-dev
  clang-19 libclang-rt-19-dev
)
# clang-19: the ASan/UBSan + libFuzzer build (make test-sanitize, make fuzz); Debian's
# clang 14 cannot compile std::expected with libstdc++ 12.
TEST_PKGS=(
  iproute2 iputils-ping nftables ethtool curl jq procps psmisc util-linux libcap2-bin
  iperf3 hping3 nmap tshark netsniff-ng python3 python3-scapy openssl
  prometheus apache2-utils python3-bcrypt sqlite3
  pmacct nfdump clickhouse-server
  nginx-light wrk dnsmasq-base bind9-dnsutils
  redis-server redis-tools postgresql postgresql-contrib mariadb-server mariadb-client
  nghttp2-client python3-grpcio
  rabbitmq-server python3-pika kcat conntrack
  chromium fonts-dejavu-core
)

want=("${BUILD_PKGS[@]}")
if [[ "${1:-}" != "--build-only" ]]; then
  want+=("${TEST_PKGS[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js + npm: the web UI's bundle (build) and tests/deploy. Checked by command, not by
# package: machine images may carry NodeSource's nodejs (npm bundled), which Debian's npm
# package would conflict with.
if ! { command -v node && command -v npm; } >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup-deps: all ${#want[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup-deps: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi

echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer once, non-interactively.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
# Server packages (prometheus, nfdump's nfcapd, pmacct, redis, postgresql, mariadb, rabbitmq-server and its epmd) would start system services on
# install; tests run their own instances. A policy-rc.d that forbids starting, for the
# duration of the install only (one already present is left alone).
own_policy=false
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  own_policy=true
fi
trap '$own_policy && rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The prometheus package starts a system service on :9090; tests run their own server.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
  systemctl disable prometheus >/dev/null 2>&1 || true
fi
echo "setup-deps: done"
