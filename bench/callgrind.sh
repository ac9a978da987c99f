#!/bin/sh
# Instructions per message: run a scenario against parleyd (or the
# reflector) under valgrind's callgrind, twice, with a short and a long
# publishing time, and print what the extra messages of the long run cost:
# instructions (Ir) per message and per delivery, in total and by
# function.  Setup (start-up, connects, subscriptions) is the same in both
# runs and drops out.  Unlike deliveries/s on a shared VM, these counts
# repeat to within a fraction of a percent, so they show changes of a few
# percent in the server's own code (the kernel's share is not counted).
#
#   bench/callgrind.sh [-t parley|reflector] [-b PARLEYD] [-p PLUGIN_DIR]
#                      [-d SHORT,LONG] [-n TOP] [-k DIR] [-s]
#                      [SCENARIO [GENERATOR OPTIONS...]]
#
# SCENARIO defaults to "rooms --header event:typing" (100 rooms x 10,
# fanned out without storage); the generator gets "-w 64 -d SECS" and the
# rest as given, e.g. bench/callgrind.sh fanout -n 1000.  -d the two
# publishing times (default 5,10 s), -n how many functions to list
# (default 25), -k keep the callgrind files in DIR (callgrind_annotate
# DIR/long.out).  -s simulates caches and branch prediction and ranks by
# callgrind's cycle estimate instead (Ir + 10 x (L1 misses + mispredicted
# branches) + 100 x last-level misses): cheap instructions (malloc's, say)
# and costly ones (copies into cold buffers) part ways there, and wall-clock
# changes follow it better than Ir alone.  Needs valgrind.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
target=parley
bin="${PARLEYD:-$top/build/parleyd}"
plugins="${PARLEY_PLUGIN_DIR:-$top/build/plugins/.libs}"
durs=5,10
ntop=25
keep=""
sim=0
while getopts t:b:p:d:n:k:s o; do
	case $o in
	t) target=$OPTARG ;;
	b) bin=$OPTARG ;;
	p) plugins=$OPTARG ;;
	d) durs=$OPTARG ;;
	n) ntop=$OPTARG ;;
	k) keep=$OPTARG ;;
	s) sim=1 ;;
	*) sed -n '11,14p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
case $target in parley|reflector) ;; *)
	echo "callgrind: -t parley or reflector, not '$target'" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null 2>&1 ||
    { echo "callgrind: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
short=${durs%,*} long=${durs#*,}
[ "$short" -lt "$long" ] 2>/dev/null ||
    { echo "callgrind: -d SHORT,LONG with SHORT < LONG (seconds)" >&2; exit 2; }
if [ $# -eq 0 ]; then
	set -- rooms --header event:typing
fi
scenario=$1
shift
pb="$here/parley-bench"
make -s -C "$here" >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/parley-callgrind.XXXXXX")
srvpid=""
cleanup() {
	[ -z "$srvpid" ] || kill "$srvpid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

vgsim=""
[ $sim -eq 0 ] || vgsim="--cache-sim=yes --branch-sim=yes"
# valgrind in front of the server; run-parley.sh starts this as "parleyd"
cat >"$work/vg" <<EOF
#!/bin/sh
exec valgrind -q --tool=callgrind $vgsim --callgrind-out-file="\$CG_OUT" "$bin" "\$@"
EOF
chmod +x "$work/vg"

# run NAME SECS GENERATOR-OPTIONS...: one run under callgrind; leaves
# $work/NAME.out and the numbers of messages sent and deliveries received
# in $work/NAME.msgs and $work/NAME.dels
run() {
	name=$1 secs=$2
	shift 2
	export CG_OUT="$work/$name.out"
	case $target in
	parley)
		line=$("$here/run-parley.sh" -b "$work/vg" -p "$plugins" "$work/srv.$name") || true
		srvpid=$(echo "$line" | cut -d' ' -f1)
		url=$(echo "$line" | cut -d' ' -f2)
		[ -n "$srvpid" ] || { echo "callgrind: parleyd did not start" >&2; exit 1; } ;;
	reflector)
		port=$("$pb" port)
		taskset -c 0 valgrind -q --tool=callgrind $vgsim --callgrind-out-file="$CG_OUT" \
		    "$pb" reflect -q --listen "127.0.0.1:$port" &
		srvpid=$!
		url="ws://127.0.0.1:$port/ws"
		i=0
		# any HTTP answer will do: it is listening
		until curl -s -o /dev/null "http://127.0.0.1:$port/" || [ $i -ge 100 ]; do
			sleep 0.1; i=$((i + 1))
		done ;;
	esac
	echo "--- $target under callgrind: $scenario for $secs s" >&2
	"$pb" "$scenario" -t "$target" -u "$url" --cpu 1 -w 64 -d "$secs" \
	    --drain 30 "$@" >"$work/$name.txt" 2>&1 || {
		cat "$work/$name.txt" >&2
		echo "callgrind: the generator reported a failed run" >&2
		exit 1
	}
	awk '/ sent [0-9]+ messages/ { for (i = 1; i <= NF; i++) {
		if ($i == "sent") m = $(i + 1); if ($i == "received") d = $(i + 1) } }
	    END { gsub(",", "", m); gsub(",", "", d); print m > "'"$work/$name.msgs"'";
		print d > "'"$work/$name.dels"'" }' "$work/$name.txt"
	kill "$srvpid"
	# callgrind writes its file when the server has exited
	i=0
	while kill -0 "$srvpid" 2>/dev/null && [ $i -lt 600 ]; do
		sleep 0.1; i=$((i + 1))
	done
	wait "$srvpid" 2>/dev/null || true
	srvpid=""
	[ -s "$CG_OUT" ] || { echo "callgrind: no output from the $name run" >&2; exit 1; }
}

# The self cost of every function, "cost file:function" lines (the file
# without directories; a function that callgrind saw both with and without
# debug information is summed under its name), and "cost PROGRAM-TOTALS".
# The cost is Ir, or with -s callgrind's cycle estimate: Ir + 10 x (L1
# misses + mispredicted branches) + 100 x last-level misses.
selfcost() {
	callgrind_annotate --auto=no --threshold=100 "$1" 2>/dev/null | awk '
	    /^Events shown:/ { for (i = 3; i <= NF; i++) ev[i - 2] = $i; nev = NF - 2; next }
	    /^ *[0-9,]+ / {
		line = $0
		gsub(/\( *[0-9.]+%\)/, "", line)	# the percentages
		n = split(line, f, " ")
		if (n <= nev) next
		c = 0
		for (i = 1; i <= nev; i++) {
			v = f[i]; gsub(",", "", v); v += 0
			e = ev[i]
			if (e == "Ir") c += v
			else if (e == "I1mr" || e == "D1mr" || e == "D1mw" ||
			    e == "Bcm" || e == "Bim") c += 10 * v
			else if (e == "ILmr" || e == "DLmr" || e == "DLmw") c += 100 * v
		}
		name = ""
		for (i = nev + 1; i <= n; i++) name = name (name == "" ? "" : " ") f[i]
		if (name ~ /^PROGRAM TOTALS/) { print c, "PROGRAM-TOTALS"; next }
		sub(/ \[[^]]*\]$/, "", name)
		fn = name; sub(/.*:/, "", fn)
		file = name; sub(/:[^:]*$/, "", file); k = split(file, p, "/"); file = p[k]
		cost[fn] += c
		if (file != "???" && !(fn in where)) where[fn] = file ":"
	    }
	    END { for (k in cost) print cost[k], where[k] k }'
}

run short "$short" "$@"
run long "$long" "$@"
ms=$(cat "$work/short.msgs") ml=$(cat "$work/long.msgs")
ds=$(cat "$work/short.dels") dl=$(cat "$work/long.dels")
[ "$ml" -gt "$ms" ] 2>/dev/null ||
    { echo "callgrind: the long run sent no more messages ($ml) than the short one ($ms)" >&2; exit 1; }
selfcost "$work/short.out" >"$work/short.fn"
selfcost "$work/long.out" >"$work/long.fn"
irs=$(awk '$2 == "PROGRAM-TOTALS" { print $1 }' "$work/short.fn")
irl=$(awk '$2 == "PROGRAM-TOTALS" { print $1 }' "$work/long.fn")
if [ -n "$keep" ]; then
	mkdir -p "$keep"
	cp "$work/short.out" "$work/long.out" "$work/short.txt" "$work/long.txt" "$keep/"
fi
echo "$target, $scenario $*: $ms and $ml messages ($ds and $dl deliveries) in ${short} and ${long} s"
awk -v irs="$irs" -v irl="$irl" -v ms="$ms" -v ml="$ml" -v ds="$ds" -v dl="$dl" -v ntop="$ntop" -v sim="$sim" '
FNR == 1 { f++ }
$2 == "PROGRAM-TOTALS" { next }
{ v = $1; $1 = ""; sub(/^ /, ""); if (f == 1) s[$0] = v; else l[$0] = v }
END {
	dm = ml - ms; dd = dl - ds
	per = (irl - irs) / dm
	what = sim ? "estimated cycles" : "instructions"
	printf "  %.0f %s per message, %.1f per delivery (%.1f deliveries per message)\n",
	    per, what, (irl - irs) / dd, dd / dm
	printf "  %10s %6s  %s\n", sim ? "CEst/msg" : "Ir/msg", "share", "function (self)"
	for (k in l) d[k] = (l[k] - s[k]) / dm
	for (i = 0; i < ntop; i++) {
		best = ""
		for (k in d) if (!(k in done) && (best == "" || d[k] > d[best])) best = k
		if (best == "") break
		done[best] = 1
		printf "  %10.0f %5.1f%%  %s\n", d[best], 100 * d[best] / per, best
	}
}' "$work/short.fn" "$work/long.fn"
