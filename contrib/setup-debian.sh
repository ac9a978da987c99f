#!/bin/sh
# Install what Parley needs on Debian 12, as root.
#   contrib/setup-debian.sh          build dependencies (run the server)
#   contrib/setup-debian.sh --test   also the test services and clients
set -eu
cd "$(dirname "$0")/.."

BUILD="build-essential autoconf automake libtool pkg-config
  libevent-dev libwslay-dev libiniparser-dev libjansson-dev libhttp-parser-dev
  libssl-dev libsqlite3-dev libhiredis-dev librdkafka-dev default-libmysqlclient-dev
  libmongoc-dev libcurl4-openssl-dev libjwt-dev libcrypt-dev"
TEST="redis-server mariadb-server nginx chromium whois python3 python3-stomp gnuplot-nox rabbitmq-server
  perl curl procps openssl valgrind iproute2 util-linux"

pkgs="$BUILD"
if [ "${1:-}" = "--test" ]; then
  pkgs="$pkgs $TEST"
  # Node.js and npm: Debian's, unless a Node.js (with its npm) is there
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    pkgs="$pkgs nodejs npm"
fi

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-debian: missing packages:$missing (run as root to install them)" >&2
    exit 1
  fi
  echo "setup-debian: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
  # real STOMP clients, Mongo-wire and S3 test servers, Playwright (no browser download)
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund >/dev/null
  fi
fi
