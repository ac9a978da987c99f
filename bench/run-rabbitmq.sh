#!/bin/sh
# Start or stop a private RabbitMQ (Debian's rabbitmq-server, 3.10) with
# STOMP and Web-STOMP for the side-by-side benchmark (and test 82, which
# runs that side-by-side on a tiny load).  contrib/setup-debian.sh --test
# installs rabbitmq-server.
#
#   bench/run-rabbitmq.sh [-c CPU] [-w WSPORT] start DIR
#       prints "PID ws://127.0.0.1:WSPORT/ws tcp://127.0.0.1:STOMPPORT"
#       (PID is the Erlang VM, beam.smp, for /proc CPU and RSS)
#   bench/run-rabbitmq.sh stop DIR
#
# The node is private: its own name, data, log and plugin files under DIR
# (made owned by the rabbitmq user), its own epmd on a free port, all ports
# free loopback ports (-w picks the Web-STOMP one, e.g. 15674).  Guest/guest
# works from loopback; vhost "/".
#
# The open-file limit: the stock wrapper (/usr/sbin/rabbitmq-server) goes
# through su, which resets RLIMIT_NOFILE to 1024, and RabbitMQ then drops
# connections near 1,000 clients.  So this raises the limit to the hard
# limit and runs /usr/lib/rabbitmq/bin/rabbitmq-server directly under
# setpriv (which keeps limits) as the rabbitmq user, pinned with taskset.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cpu=0
wsport=""
while getopts c:w: o; do
	case $o in
	c) cpu=$OPTARG ;;
	w) wsport=$OPTARG ;;
	*) echo "usage: $0 [-c CPU] [-w WSPORT] start|stop DIR" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || { echo "usage: $0 [-c CPU] [-w WSPORT] start|stop DIR" >&2; exit 2; }
cmd=$1
dir=$2

stop() {
	[ -d "$dir" ] || return 0
	for f in wrapper.pid beam.pid epmd.pid; do
		[ -f "$dir/$f" ] || continue
		pid=$(cat "$dir/$f")
		kill "$pid" 2>/dev/null || true
	done
	# wait for the VM to go (it flushes and exits on SIGTERM)
	if [ -f "$dir/beam.pid" ]; then
		pid=$(cat "$dir/beam.pid")
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/wrapper.pid" "$dir/beam.pid" "$dir/epmd.pid"
}

case $cmd in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 [-c CPU] [-w WSPORT] start|stop DIR" >&2; exit 2 ;;
esac

[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || {
	echo "run-rabbitmq: rabbitmq-server is not installed (apt-get install rabbitmq-server)" >&2
	exit 1
}
pb="$here/parley-bench"
[ -x "$pb" ] || make -s -C "$here" >&2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ -n "$wsport" ] || wsport=$("$pb" port)
stport=$("$pb" port)
amqp=$("$pb" port)
dist=$("$pb" port)
epmdport=$("$pb" port)
node="pbench$wsport@localhost"

mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
echo "[rabbitmq_stomp,rabbitmq_web_stomp]." >"$dir/enabled_plugins"
cat >"$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$amqp
stomp.listeners.tcp.1 = 127.0.0.1:$stport
web_stomp.tcp.port = $wsport
web_stomp.tcp.ip = 127.0.0.1
log.console = false
log.file.level = warning
CONF
head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/home/.erlang.cookie"
chmod 400 "$dir/home/.erlang.cookie"
chown -R rabbitmq:rabbitmq "$dir"
chmod 755 "$dir"
if ! setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups test -w "$dir/home"; then
	echo "run-rabbitmq: the rabbitmq user cannot reach $dir (a parent directory is not searchable)" >&2
	exit 1
fi

ulimit -n "$(ulimit -Hn)"
export HOME="$dir/home"
export ERL_EPMD_PORT=$epmdport
export RABBITMQ_NODENAME=$node
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$amqp
export RABBITMQ_DIST_PORT=$dist
export RABBITMQ_MNESIA_BASE="$dir/mnesia"
export RABBITMQ_LOG_BASE="$dir/log"
export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
export RABBITMQ_PID_FILE="$dir/rabbit.pid"
export RABBITMQ_CONF_ENV_FILE=/dev/null

# our own epmd, so nothing outlives "stop"
setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
	epmd -port "$epmdport" >"$dir/log/epmd.log" 2>&1 &
echo $! >"$dir/epmd.pid"
cd "$dir"
taskset -c "$cpu" setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
	/usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/log/stdout.log" 2>&1 &
echo $! >"$dir/wrapper.pid"

# the Erlang VM (beam.smp) writes its pid to RABBITMQ_PID_FILE when it boots
i=0
beam=""
while [ $i -lt 600 ]; do
	if [ -z "$beam" ] && [ -s "$dir/rabbit.pid" ]; then
		beam=$(cat "$dir/rabbit.pid")
		echo "$beam" >"$dir/beam.pid"
	fi
	if ! kill -0 "$(cat "$dir/wrapper.pid")" 2>/dev/null; then
		echo "run-rabbitmq: rabbitmq-server exited during start-up; log:" >&2
		tail -n 30 "$dir/log/stdout.log" >&2 2>/dev/null || true
		stop
		exit 1
	fi
	# Web-STOMP answers once the plugins are up
	if [ -n "$beam" ] && curl -s -o /dev/null "http://127.0.0.1:$wsport/ws" 2>/dev/null; then
		echo "$beam ws://127.0.0.1:$wsport/ws tcp://127.0.0.1:$stport"
		exit 0
	fi
	sleep 0.2
	i=$((i + 1))
done
echo "run-rabbitmq: Web-STOMP did not come up in 120 s; log:" >&2
tail -n 30 "$dir/log/stdout.log" >&2 || true
stop
exit 1
