#!/bin/sh
# Start parleyd for a benchmark, pinned to one CPU, on free loopback ports,
# with a private directory and the per-connection/per-IP limits switched
# off (the generator is one IP opening thousands of connections).
#
#   bench/run-parley.sh [-c CPU] [-b PARLEYD] [-p PLUGIN_DIR] [-o KEY=VAL]... DIR
#
# Prints one line "PID WS_URL STOMP_URL" when /healthz answers; parleyd's
# log is DIR/parleyd.log.  Stop it with: kill PID.  -o section.key=value
# adds or overrides a config key (e.g. -o batch.interval_ms=5).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
cpu=0
bin="${PARLEYD:-$top/build/parleyd}"
plugins="${PARLEY_PLUGIN_DIR:-$top/build/plugins/.libs}"
extra=""
while getopts c:b:p:o: o; do
	case $o in
	c) cpu=$OPTARG ;;
	b) bin=$OPTARG ;;
	p) plugins=$OPTARG ;;
	o) extra="$extra $OPTARG" ;;
	*) echo "usage: $0 [-c CPU] [-b PARLEYD] [-p PLUGIN_DIR] [-o sec.key=val] DIR" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "usage: $0 [-c CPU] [-b PARLEYD] [-p PLUGIN_DIR] DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pb="$here/parley-bench"
[ -x "$pb" ] || make -s -C "$here" >&2
wsport=$("$pb" port)
stport=$("$pb" port)
[ "$stport" != "$wsport" ] || stport=$("$pb" port)

# section.key=value overrides, applied by awk below
awk -v extra="$extra" -v ws="$wsport" -v st="$stport" -v plugins="$plugins" '
BEGIN {
	n = split(extra, kv, " ")
	for (i = 1; i <= n; i++) {
		split(kv[i], a, "=")
		split(a[1], sk, ".")
		over[sk[1] "." sk[2]] = a[2]
		osec[sk[1]] = 1
	}
}
END {
	conf["server.listen"] = "127.0.0.1:" ws
	conf["server.stomp_listen"] = "127.0.0.1:" st
	conf["server.plugin_dir"] = plugins
	conf["server.log_level"] = "warn"
	conf["server.max_subscriptions"] = "100000"
	conf["server.heartbeat_tolerance_pct"] = "200"
	conf["limits.msg_rate"] = "0"
	conf["limits.byte_rate"] = "0"
	conf["limits.ip_max_connections"] = "0"
	conf["limits.ip_connect_rate"] = "0"
	conf["sqlite.path"] = "parley.db"
	conf["fs.dir"] = "media"
	for (k in over) conf[k] = over[k]
	for (k in conf) { split(k, sk, "."); secs[sk[1]] = 1 }
	for (s in secs) {
		print "[" s "]"
		for (k in conf) { split(k, sk, "."); if (sk[1] == s) print sk[2] " = " conf[k] }
	}
}' </dev/null >"$dir/parley.ini"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cd "$dir"
taskset -c "$cpu" "$bin" -c "$dir/parley.ini" >"$dir/parleyd.log" 2>&1 &
pid=$!
i=0
while :; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "run-parley: parleyd exited during start-up:" >&2
		cat "$dir/parleyd.log" >&2
		exit 1
	fi
	curl -fs "http://127.0.0.1:$wsport/healthz" >/dev/null 2>&1 && break
	i=$((i + 1))
	[ $i -lt 150 ] || { echo "run-parley: no /healthz after 15 s" >&2; kill "$pid"; exit 1; }
	sleep 0.1
done
echo "$pid ws://127.0.0.1:$wsport/ws tcp://127.0.0.1:$stport"
