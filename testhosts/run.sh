#!/usr/bin/env bash
# run.sh: the real-hosts test (make hosts). Needs root and iproute2.
# Whatever happens (failure, Ctrl-C), the trap kills the processes left in
# this test's namespaces (vbh-*) and removes the namespaces and their
# /etc/netns hosts files.
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup() {
	local ns
	for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^vbh-/ {print $1}'); do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf /etc/netns/vbh-*
}
trap cleanup EXIT INT TERM

if [[ "$(id -u)" != 0 ]]; then
	echo "make hosts: needs root (ip netns)" >&2
	exit 1
fi
VERBOSE_HOSTS=1 "${GO:-go}" test -count=1 -v -timeout 10m -run '^TestRealHosts$' ./testhosts
