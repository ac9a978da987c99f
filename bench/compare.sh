#!/bin/sh
# Side by side: run scenarios against Parley, RabbitMQ Web-STOMP and the
# trivial reflector, each started fresh, the server pinned to one CPU and
# the generator to another, then print the numbers and the ratios.
#
#   bench/compare.sh [-t parley,rabbitmq,reflector] [-n SUBS] [-d SECS]
#                    [-s SIZE] [-w WINDOW] [-R RATES] [-I IDLE_CONNS]
#                    [-N SIZES] [-r REPEATS] [-g] [-x GEN_ARGS] [-S CPU]
#                    [-G CPU] [-o CSV] [-C SEC.KEY=VAL]... [-T] [SCENARIO...]
#
# SCENARIO: fanout (default; a max-throughput run with a receipt window,
# then one run per fixed rate in -R, comma-separated msg/s, default 10 --
# a rate is skipped for a target whose max run reached less than half of
# it), rooms, idle (-I connections, default 10000), storm, history (Parley
# only: the others have no history), growth (a max fanout run per room
# size in -N, default 100,300,1000,3000,10000, all with the same -w, so a
# subscriber gets as many frames a turn in every size; on one server per
# target and round, smallest first).  Results are appended to the CSV
# (default bench/results/compare-YYYYmmdd-HHMMSS.csv).  -r runs each
# measurement several times; the table shows the median run.  Repeats
# take turns: each round starts every target afresh and runs it once, so
# the machine's drift over minutes falls on all targets alike and the
# ratios compare runs made side by side; -g groups them instead (all of
# one target's runs on one server, then the next target).  Only the
# table: bench/compare.sh -o FILE.csv -T.  -x passes more options to every
# generator run (e.g. -x "--header event:typing": Parley fans those out
# and stores nothing; keep such runs in a CSV of their own).  -C sets a key
# of Parley's config (repeatable; e.g. -C server.gather_min=1), through
# bench/run-parley.sh -o.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
targets=parley,rabbitmq,reflector
subs=1000
dur=10
size=100
window=64
rates=10
idle=10000
sizes=100,300,1000,3000,10000
reps=1
grouped=0
xargs=""
tableonly=0
scpu=0
gcpu=1
csv=""
popts=""
while getopts t:n:d:s:w:R:I:N:r:gx:S:G:o:C:T o; do
	case $o in
	t) targets=$OPTARG ;;
	n) subs=$OPTARG ;;
	d) dur=$OPTARG ;;
	s) size=$OPTARG ;;
	w) window=$OPTARG ;;
	R) rates=$OPTARG ;;
	I) idle=$OPTARG ;;
	N) sizes=$OPTARG ;;
	r) reps=$OPTARG ;;
	g) grouped=1 ;;
	x) xargs=$OPTARG ;;
	T) tableonly=1 ;;
	S) scpu=$OPTARG ;;
	G) gcpu=$OPTARG ;;
	o) csv=$OPTARG ;;
	C) case $OPTARG in
	   *=*) popts="$popts -o $OPTARG" ;;
	   *) echo "compare: -C takes section.key=value, not '$OPTARG'" >&2; exit 2 ;;
	   esac ;;
	*) sed -n '2,30p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
scenarios=${*:-fanout}
pb="$here/parley-bench"
make -s -C "$here" >&2
mkdir -p "$here/results"
[ -n "$csv" ] || csv="$here/results/compare-$(date +%Y%m%d-%H%M%S).csv"
work=$(mktemp -d "${TMPDIR:-/tmp}/parley-compare.XXXXXX")
chmod 755 "$work"	# the rabbitmq user runs RabbitMQ from a directory in it
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

srvpid=""
rmqdir=""
cleanup() {
	[ -z "$srvpid" ] || kill "$srvpid" 2>/dev/null || true
	[ -z "$rmqdir" ] || "$here/run-rabbitmq.sh" stop "$rmqdir" || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start TARGET: sets srvpid, wsurl (and rmqdir for RabbitMQ)
start() {
	case $1 in
	parley)
		# shellcheck disable=SC2086 # popts: "-o KEY=VAL" words
		set -- $("$here/run-parley.sh" -c "$scpu" $popts "$work/parley.$$.$(date +%s%N)")
		srvpid=${1:-} wsurl=${2:-}
		[ -n "$srvpid" ] || { echo "compare: parleyd did not start" >&2; exit 1; } ;;
	rabbitmq)
		rmqdir="$work/rabbitmq.$(date +%s%N)"
		set -- $("$here/run-rabbitmq.sh" -c "$scpu" start "$rmqdir")
		srvpid="" wsurl=${2:-} bpid=${1:-}
		[ -n "$bpid" ] || { echo "compare: rabbitmq did not start" >&2; exit 1; } ;;
	reflector)
		port=$("$pb" port)
		taskset -c "$scpu" "$pb" reflect -q --listen "127.0.0.1:$port" &
		srvpid=$!
		wsurl="ws://127.0.0.1:$port/ws"
		sleep 0.3 ;;
	esac
}

stop() {
	if [ -n "$rmqdir" ]; then
		"$here/run-rabbitmq.sh" stop "$rmqdir"
		rmqdir=""
	fi
	if [ -n "$srvpid" ]; then
		kill "$srvpid" 2>/dev/null || true
		wait "$srvpid" 2>/dev/null || true
		srvpid=""
	fi
}

pidof_target() {
	if [ "$1" = rabbitmq ]; then echo "$bpid"; else echo "$srvpid"; fi
}

# the last CSV row's value of column $1
lastcol() {
	tail -n 1 "$csv" | awk -F, -v h="$(head -n 1 "$csv")" -v want="$1" \
	    'BEGIN { n = split(h, c, ","); for (i = 1; i <= n; i++) if (c[i] == want) k = i } { print $k }'
}

# gen target label scenario args...: $runs runs during which the rest of
# the machine was quiet (other processes under 20% of a CPU), at most
# 3 x $runs tries; noisy runs stay in the CSV, the table skips them
gen() {
	# own names: the callers' t and sc are shell globals too (growth runs
	# "fanout" inside scenario "growth")
	gt=$1 glabel=$2 gsc=$3
	shift 3
	good=0 tries=0
	while [ $good -lt "$runs" ] && [ $tries -lt $((runs * 3)) ]; do
		tries=$((tries + 1))
		echo "--- $gt: $gsc $glabel (round $round, run $tries, $good of $runs quiet so far)" >&2
		"$pb" "$gsc" -t "$gt" -u "$wsurl" -p "$(pidof_target "$gt")" \
		    --cpu "$gcpu" --csv "$csv" --label "$glabel" -q $xargs "$@" || true
		other=$(lastcol other_cpu_pct)
		if [ "${other%.*}" -le 20 ] 2>/dev/null; then
			good=$((good + 1))
		else
			echo "--- noisy: other processes used ${other}% of a CPU" >&2
			sleep 5
		fi
	done
}

# The table: per scenario, run and target the median run (by deliveries/s,
# connects/s for storm, RSS per connection for idle), and ratios for the
# same scenario and run:
# max-throughput runs compare deliveries/s (ours/theirs); fixed-rate runs
# compare p99 latency (theirs/ours, marked "L"); idle compares RSS per
# connection (theirs/ours, marked "M"); storm compares connects/s.
table() {
awk -F, '
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{
	k = $col["scenario"] SUBSEP $col["label"] " " $col["subs"] SUBSEP $col["target"]
	v = $col["scenario"] == "storm" ? $col["connects_per_s"] : \
	    $col["scenario"] == "idle" ? $col["server_rss_per_conn_b"] : $col["deliveries_per_s"]
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	noisy = ("other_cpu_pct" in col) && $col["other_cpu_pct"] + 0 > 20
	if (noisy) { nn[k]++; nval[k, nn[k]] = v + 0; nrow[k, nn[k]] = $0; next }
	n[k]++; val[k, n[k]] = v + 0; row[k, n[k]] = $0
}
END {
	# a group with only noisy runs: use those (marked in the table)
	for (o = 1; o <= nk; o++) {
		k = order[o]
		if (n[k] == 0) {
			for (i = 1; i <= nn[k]; i++) { val[k, i] = nval[k, i]; row[k, i] = nrow[k, i] }
			n[k] = nn[k]; allnoisy[k] = 1
		}
	}
}
function median(k,    i, j, t, idx, m) {
	m = n[k]
	for (i = 1; i <= m; i++) idx[i] = i
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
		if (val[k, idx[j]] < val[k, idx[i]]) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
	return row[k, idx[int((m + 1) / 2)]]
}
function ratio(f, g, sc, rate) {
	if (sc == "idle")
		return g[col["server_rss_per_conn_b"]] > 0 && f[col["server_rss_per_conn_b"]] > 0 ? \
		    sprintf("%.1fM", g[col["server_rss_per_conn_b"]] / f[col["server_rss_per_conn_b"]]) : "-"
	if (sc == "storm")
		return g[col["connects_per_s"]] > 0 ? sprintf("%.2f", f[col["connects_per_s"]] / g[col["connects_per_s"]]) : "-"
	if (rate > 0)
		return f[col["lat_p99_us"]] > 0 ? sprintf("%.1fL", g[col["lat_p99_us"]] / f[col["lat_p99_us"]]) : "-"
	return g[col["deliveries_per_s"]] > 0 ? sprintf("%.2f", f[col["deliveries_per_s"]] / g[col["deliveries_per_s"]]) : "-"
}
END {
	printf "\n%-8s %-15s %-9s %3s %11s %8s %8s %8s %8s %7s %9s %8s %8s %8s %s\n", "scenario", "run", "target", "n",
	    "deliv/s", "p50 ms", "p99 ms", "max ms", "srv us/d", "srv CPU", "RSS/conn", "conn/s", "xRabbit", "xReflect", "missing/errors"
	for (o = 1; o <= nk; o++) {
		k = order[o]
		split(k, kk, SUBSEP)
		split(median(k), f, ",")
		sc = kk[1]; rate = f[col["rate"]] + 0
		xr = "-"; xf = "-"
		kr = kk[1] SUBSEP kk[2] SUBSEP "rabbitmq"; kf = kk[1] SUBSEP kk[2] SUBSEP "reflector"
		if (kk[3] != "rabbitmq" && (kr in seen)) { split(median(kr), g, ","); xr = ratio(f, g, sc, rate) }
		if (kk[3] != "reflector" && (kf in seen)) { split(median(kf), g, ","); xf = ratio(f, g, sc, rate) }
		rss = (sc == "idle" || sc == "storm") ? sprintf("%.1fK", f[col["server_rss_per_conn_b"]] / 1024) : "-"
		printf "%-8s %-15s %-9s %3d %11.0f %8.2f %8.2f %8.2f %8.2f %6.0f%% %9s %8.0f %8s %8s %s/%s%s\n",
		    sc, kk[2], kk[3], n[k], f[col["deliveries_per_s"]],
		    f[col["lat_p50_us"]] / 1000, f[col["lat_p99_us"]] / 1000, f[col["lat_max_us"]] / 1000,
		    f[col["server_us_per_delivery"]], f[col["server_cpu_pct"]], rss, f[col["connects_per_s"]],
		    xr, xf, f[col["missing"]], f[col["errors"]],
		    (f[col["generator_bound"]] == "no" ? "" : " GEN-BOUND(" f[col["generator_bound"]] ")") \
		    (k in allnoisy ? " NOISY" : "")
	}
	print "run: label and subscribers (idle: connections); n: quiet runs (the median is shown); ratios: max runs ours/theirs deliveries/s; L = their p99 / our p99 at the same fixed rate; M = their RSS per connection / ours; storm ours/theirs connects/s"
}' "$1"
}

if [ "$tableonly" = 1 ]; then
	[ -r "$csv" ] || { echo "compare: -T needs -o CSV" >&2; exit 2; }
	table "$csv"
	exit 0
fi

echo "server on CPU $scpu, generator on CPU $gcpu (taskset); CSV: $csv" >&2
# measure TARGET SCENARIO: start the target, run the scenario, stop it
measure() {
	t=$1 sc=$2
	if [ "$t" = rabbitmq ] && [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
		echo "--- rabbitmq: not installed, skipped (apt-get install rabbitmq-server)" >&2
		return
	fi
	if [ "$sc" = history ] && [ "$t" != parley ]; then
		echo "--- $t: no history/resume, skipped" >&2
		return
	fi
	start "$t"
	case $sc in
	fanout)
		gen "$t" "max" fanout -n "$subs" -s "$size" -w "$window" -d "$dur" --drain 30
		# the max run's deliveries/s: the last row of the CSV
		max=$(lastcol deliveries_per_s)
		max=${max%.*}
		for r in $(echo "$rates" | tr ',' ' '); do
			if [ $((r * subs)) -gt $((max * 2)) ]; then
				echo "--- $t: ${r} msg/s skipped: offered $((r * subs)) deliveries/s, its max run reached $max" >&2
				continue
			fi
			gen "$t" "${r}msg/s" fanout -n "$subs" -s "$size" -R "$r" -d "$dur" --drain 30
		done ;;
	rooms)
		gen "$t" "max" rooms -n "$subs" -s "$size" -w "$window" -d "$dur" --drain 30 ;;
	growth)
		for n in $(echo "$sizes" | tr ',' ' '); do
			gen "$t" "max" fanout -n "$n" -s "$size" -w "$window" -d "$dur" --drain 30
		done ;;
	idle)
		gen "$t" "idle" idle -n "$idle" -d "$dur" ;;
	storm)
		gen "$t" "storm" storm -n "$subs" ;;
	history)
		gen "$t" "history" history -n 100 --history 1000 ;;
	*)
		echo "compare: unknown scenario $sc" >&2; exit 2 ;;
	esac
	stop
}

# turns (default): $reps rounds of one run per target; -g: one round of
# $reps runs per target
if [ "$grouped" = 1 ]; then rounds=1 runs=$reps; else rounds=$reps runs=1; fi
for sc in $scenarios; do
	round=1
	while [ "$round" -le "$rounds" ]; do
		for t in $(echo "$targets" | tr ',' ' '); do
			measure "$t" "$sc"
		done
		round=$((round + 1))
	done
done

table "$csv"
