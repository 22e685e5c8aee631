package main

import (
	"strings"
)

// schedtraceOff is the GODEBUG setting that keeps the Go runtime's sysmon
// thread out of its deep sleep: a scheduler trace every 2^31-1 ms (24.8
// days), the longest period there is. The runtime prints one "SCHED ..."
// line on stderr each time the period has passed since boot: never on a
// host up for less than 24.8 days, else once at start and then every 24.8
// days.
//
// Why: when every P of the process is idle — a proxy waiting on
// PostgreSQL, which on a shared core is most of the time — sysmon parks
// itself, and the next system call any goroutine makes wakes it with a
// futex; it then polls every 20 µs for at least 1 ms before it backs off.
// A proxy goes idle and busy again thousands of times a second, so that
// cycle cost ~20 % of Switchyard's CPU per transaction (relay, 10 and 100
// clients, and per new connection) and put transaction pooling at 100
// clients into a mode with four context switches per transaction
// (bench/RESULTS.md, issue 11). A sysmon that never deep-sleeps backs off
// to one wake-up every 10 ms instead, which costs an idle process about
// 100 wake-ups a second. The runtime reads this setting only at start-up,
// so main re-executes the binary with it (runtime_linux.go); an operator
// who sets schedtrace in GODEBUG themselves (schedtrace=0 restores Go's
// default) is left alone.
const schedtraceOff = "schedtrace=2147483647"

// sysmonEnv returns environ with schedtraceOff added to GODEBUG, and
// whether it changed anything: not when GODEBUG already names schedtrace.
func sysmonEnv(environ []string) ([]string, bool) {
	out := make([]string, 0, len(environ)+1)
	godebug := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = v
			continue
		}
		out = append(out, kv)
	}
	for _, f := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(f), "schedtrace=") {
			return environ, false
		}
	}
	if godebug != "" {
		godebug += ","
	}
	return append(out, "GODEBUG="+godebug+schedtraceOff), true
}
