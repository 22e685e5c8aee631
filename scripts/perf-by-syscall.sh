#!/usr/bin/env bash
# perf-by-syscall.sh PID SECONDS [OUT]: where a process's CPU goes, kernel included.
#
# Samples PID with `perf record -e cpu-clock -g` (a software clock: it works in
# VMs without hardware counters) and attributes each sample to the system call
# it was taken in (the handler under do_syscall_64: ksys_write, __x64_sys_sendto,
# ...), or else to the first Go runtime activity on its stack (mallocgc,
# copystack, gcDrain, findRunnable, sysmon, ...), or else to its leaf function.
# Run it while a benchmark drives the process; divide a row's samples by the
# sampling rate (2000 Hz) and the transactions in the window for µs per
# transaction. This is how issue 11's profiles in bench/RESULTS.md were read.
# Needs perf (Debian package linux-perf) and root or perf_event_paranoid <= 1.
set -euo pipefail
pid=${1:?PID}; secs=${2:?SECONDS}; out=${3:-/tmp/perf-$pid.data}
perf record -q -e cpu-clock -F 2000 -g -o "$out" -p "$pid" -- sleep "$secs" >/dev/null 2>&1
perf script -i "$out" -F ip,sym 2>/dev/null | awk '
BEGIN { n = split("gcBgMarkWorker gcDrain scanstack newstack copystack mallocgc findRunnable schedule mcall sysmon exitsyscall entersyscall wakep startm stopm newproc1 goexit0 bgsweep bgscavenge", K, " ") }
/^$/ {
	if (depth > 0) { k = sys != "" ? "syscall " sys : (cat != "" ? "runtime." cat : "leaf " first); c[k]++; total++ }
	depth = 0; sys = ""; prev = ""; first = ""; cat = ""; next
}
{
	depth++; s = $2
	if (depth == 1) first = s
	if (s == "do_syscall_64" && sys == "") sys = prev
	prev = s
	if (cat == "") for (i = 1; i <= n; i++) if (index(s, "runtime." K[i]) == 1) { cat = K[i]; break }
}
END {
	for (k in c) printf "%7d %5.1f%%  %s\n", c[k], 100 * c[k] / total, k
	printf "%7d samples\n", total
}' | sort -rn | head -40
