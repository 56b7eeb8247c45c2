#!/usr/bin/env bash
# cluster.sh: run a local cluster of meshnode agents on 127.0.0.1.
#
# Every agent binds port 0 (gossip, relay and HTTP), so that several clusters
# can run side by side; the script learns the real ports from each agent's
# "agent started" log line. State (pid files, addresses, logs, the binary)
# lives under $CLUSTER_DIR, default ${TMPDIR:-/tmp}/verbose-cluster.
set -euo pipefail

CLUSTER_DIR="${CLUSTER_DIR:-${TMPDIR:-/tmp}/verbose-cluster}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$CLUSTER_DIR/bin/meshnode"
START_TIMEOUT="${CLUSTER_START_TIMEOUT:-20}" # seconds for the cluster to form
STOP_TIMEOUT="${CLUSTER_STOP_TIMEOUT:-10}"   # seconds between SIGTERM and SIGKILL
LOG_LEVEL="${CLUSTER_LOG_LEVEL:-info}"

usage() {
	cat <<USAGE
Usage: cluster.sh COMMAND [ARGS]

Commands:
  up N                         build meshnode, start N agents on 127.0.0.1 joined
                               through node 1, wait until the cluster has formed
  emit [-n NODE] EVENT [ARG...] emit an event through node NODE (default 1)
  tail [-n NODE] [EVENT...]    print the events node NODE receives (default 1)
  demo                         show an event crossing the running cluster
  status                       each node: pid, alive?, addresses, links
  down                         stop the agents this script started (SIGTERM,
                               then SIGKILL after ${STOP_TIMEOUT}s)

Environment:
  CLUSTER_DIR            state and logs (now: $CLUSTER_DIR)
  CLUSTER_START_TIMEOUT  seconds 'up' waits for the cluster (default 20)
  CLUSTER_STOP_TIMEOUT   seconds 'down' waits before SIGKILL (default 10)
  CLUSTER_LOG_LEVEL      agents' --log-level (default info)
  CLUSTER_AGENT_ARGS     extra flags for every agent, e.g. "--channel test"
USAGE
}

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

# node_dirs lists the node directories in node order.
node_dirs() {
	local d
	[[ -d "$CLUSTER_DIR" ]] || return 0
	for d in "$CLUSTER_DIR"/node*; do
		[[ -d "$d" ]] && echo "$d"
	done | sort -V
}

# alive PID: the process exists, is not a zombie, and is our meshnode (a
# recycled pid must never be signalled).
alive() {
	local pid="$1" stat args
	kill -0 "$pid" 2>/dev/null || return 1
	stat="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
	[[ -n "$stat" && "$stat" != Z* ]] || return 1
	args="$(ps -o args= -p "$pid" 2>/dev/null || true)"
	[[ "$args" == *meshnode* ]]
}

# addr NODE_DIR KEY: one of the node's bound addresses (gossip, relay, http).
addr() {
	sed -n "s/^$2=//p" "$1/addrs" 2>/dev/null || true
}

node_dir_of() {
	local n="$1" d
	[[ "$n" =~ ^[0-9]+$ ]] || die "-n: not a node number: $n"
	d="$CLUSTER_DIR/node$n"
	[[ -f "$d/addrs" ]] || die "no node $n in $CLUSTER_DIR (run 'cluster.sh up N' first)"
	echo "$d"
}

# wait_started DIR PID: waits for the agent's "agent started" line and
# records its addresses in DIR/addrs.
wait_started() {
	local dir="$1" pid="$2" line deadline=$((SECONDS + START_TIMEOUT))
	while :; do
		line="$(grep -m1 'agent started:' "$dir/log" 2>/dev/null || true)"
		if [[ -n "$line" ]]; then
			{
				echo "gossip=$(sed -n 's/.* gossip=\([^ ]*\).*/\1/p' <<<"$line")"
				echo "relay=$(sed -n 's/.* relay=\([^ ]*\).*/\1/p' <<<"$line")"
				echo "http=$(sed -n 's/.* http=\([^ ]*\).*/\1/p' <<<"$line")"
			} >"$dir/addrs"
			return 0
		fi
		alive "$pid" || return 1
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# links_of HTTP: "connected/peers" from the agent's /v1/health.
links_of() {
	"$BIN" health --http "$1" 2>/dev/null |
		awk -F'[:,]' '/"connected"/ {c=$2} /"peers"/ {p=$2} END {gsub(/ /,"",c); gsub(/ /,"",p); print c "/" p}'
}

# formed N: every agent answers /v1/health, sees N alive members and has a
# connected link to each of the other N-1, so an event emitted right after
# `up` reaches every node.
formed() {
	local n="$1" d http alive_members dirs
	mapfile -t dirs < <(node_dirs)
	for d in "${dirs[@]}"; do
		http="$(addr "$d" http)"
		[[ "$(links_of "$http")" == "$((n - 1))/$((n - 1))" ]] || return 1
		alive_members="$("$BIN" members --http "$http" 2>/dev/null | awk 'NR > 1 && $NF == "alive"' | wc -l)" || return 1
		((alive_members == n)) || return 1
	done
}

cmd_up() {
	[[ $# -eq 1 && "$1" =~ ^[1-9][0-9]*$ ]] || die "up: want a node count, e.g. 'cluster.sh up 3'"
	local n="$1" i d pid seed="" extra=() dirs
	mapfile -t dirs < <(node_dirs)
	for d in "${dirs[@]}"; do
		if [[ -f "$d/pid" ]] && alive "$(cat "$d/pid")"; then
			die "a cluster is already running in $CLUSTER_DIR; run 'cluster.sh down' first"
		fi
	done
	for d in "${dirs[@]}"; do
		rm -rf "$d" # the previous cluster's state and logs
	done
	mkdir -p "$CLUSTER_DIR/bin"
	echo "building meshnode into $BIN"
	(cd "$REPO_ROOT" && go build -o "$BIN" ./cmd/meshnode) || die "up: go build failed"
	read -r -a extra <<<"${CLUSTER_AGENT_ARGS:-}"

	for ((i = 1; i <= n; i++)); do
		d="$CLUSTER_DIR/node$i"
		mkdir -p "$d"
		local args=(agent --node-id "node$i" --gossip 127.0.0.1:0 --relay 127.0.0.1:0 --http 127.0.0.1:0 --log-level "$LOG_LEVEL")
		[[ -n "$seed" ]] && args+=(--join "$seed")
		args+=("${extra[@]}")
		# stdin and outputs detached, so the agent outlives this script
		# without holding its caller's pipes open.
		"$BIN" "${args[@]}" </dev/null >"$d/log" 2>&1 &
		pid=$!
		echo "$pid" >"$d/pid"
		if ! wait_started "$d" "$pid"; then
			echo "cluster.sh: node$i did not start; its log:" >&2
			tail -n 20 "$d/log" >&2 || true
			cmd_down >&2 || true
			exit 1
		fi
		[[ -z "$seed" ]] && seed="$(addr "$d" gossip)"
		echo "node$i pid=$pid gossip=$(addr "$d" gossip) relay=$(addr "$d" relay) http=$(addr "$d" http)"
	done

	local deadline=$((SECONDS + START_TIMEOUT))
	until formed "$n"; do
		if ((SECONDS >= deadline)); then
			echo "cluster.sh: the cluster did not form within ${START_TIMEOUT}s; logs in $CLUSTER_DIR" >&2
			cmd_down >&2 || true
			exit 1
		fi
		sleep 0.2
	done
	echo "cluster of $n up; state and logs in $CLUSTER_DIR (node*/log)"
}

cmd_down() {
	local d pid pids=() deadline dirs
	mapfile -t dirs < <(node_dirs)
	for d in "${dirs[@]}"; do
		[[ -f "$d/pid" ]] || continue
		pid="$(cat "$d/pid")"
		if alive "$pid"; then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done
	deadline=$((SECONDS + STOP_TIMEOUT))
	for pid in "${pids[@]}"; do
		while alive "$pid" && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if alive "$pid"; then
			echo "cluster.sh: pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	for d in "${dirs[@]}"; do
		rm -f "$d/pid"
	done
	echo "stopped ${#pids[@]} agent(s); logs kept in $CLUSTER_DIR"
}

cmd_status() {
	local d pid state http links dirs
	mapfile -t dirs < <(node_dirs)
	((${#dirs[@]} > 0)) || die "no cluster in $CLUSTER_DIR"
	printf '%-8s %-8s %-6s %-22s %-22s %-22s %s\n' NODE PID ALIVE GOSSIP RELAY HTTP LINKS
	for d in "${dirs[@]}"; do
		pid="$(cat "$d/pid" 2>/dev/null || echo -)"
		state=no
		links=-
		if [[ "$pid" != - ]] && alive "$pid"; then
			state=yes
			http="$(addr "$d" http)"
			links="$(links_of "$http")"
			[[ "$links" == */* ]] && links="$links connected" || links=unreachable
		fi
		printf '%-8s %-8s %-6s %-22s %-22s %-22s %s\n' "$(basename "$d")" "$pid" "$state" \
			"$(addr "$d" gossip)" "$(addr "$d" relay)" "$(addr "$d" http)" "$links"
	done
}

# cmd_client SUB [-n NODE] ARGS...: runs `meshnode SUB` against node NODE's
# HTTP API (node 1 by default).
cmd_client() {
	local sub="$1" node=1
	shift
	if [[ "${1:-}" == "-n" ]]; then
		[[ $# -ge 2 ]] || die "$sub: -n needs a node number"
		node="$2"
		shift 2
	fi
	[[ -x "$BIN" ]] || die "no meshnode binary in $CLUSTER_DIR/bin (run 'cluster.sh up N' first)"
	local d
	d="$(node_dir_of "$node")"
	exec "$BIN" "$sub" --http "$(addr "$d" http)" "$@"
}

# cmd_demo shows an event crossing the running cluster: the last node tails
# "greeting", the first node emits it, and the event is printed as the last
# node received it. The emit is repeated (at most 25 times, 200 ms apart) only
# until the tail, which may still be subscribing, has seen one.
cmd_demo() {
	[[ -x "$BIN" ]] || die "demo: no cluster (run 'cluster.sh up 3' first)"
	local dirs last out pid i
	mapfile -t dirs < <(node_dirs)
	[[ ${#dirs[@]} -ge 2 ]] || die "demo: needs a cluster of at least 2 nodes"
	last="${#dirs[@]}"
	out="$CLUSTER_DIR/demo.out"
	: >"$out"
	"$BIN" tail --http "$(addr "${dirs[$((last - 1))]}" http)" --count 1 greeting >"$out" &
	pid=$!
	for ((i = 0; i < 25; i++)); do
		"$BIN" emit --http "$(addr "${dirs[0]}" http)" greeting '"hello from node 1"' >/dev/null
		sleep 0.2
		kill -0 "$pid" 2>/dev/null || break
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		die "demo: node $last received nothing within 5s (see $CLUSTER_DIR/node*/agent.log)"
	fi
	wait "$pid" || true
	echo "node 1 emitted greeting; node $last received:"
	cat "$out"
}

main() {
	[[ $# -ge 1 ]] || {
		usage >&2
		exit 2
	}
	local cmd="$1"
	shift
	case "$cmd" in
	up) cmd_up "$@" ;;
	down) cmd_down ;;
	status) cmd_status ;;
	emit)
		[[ $# -ge 1 ]] || die "emit: want EVENT [ARG...]"
		cmd_client emit "$@"
		;;
	tail) cmd_client tail "$@" ;;
	demo) cmd_demo ;;
	-h | --help | help) usage ;;
	*)
		echo "cluster.sh: unknown command '$cmd'" >&2
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
