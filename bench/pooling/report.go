package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/switchyard-proxy/switchyard/bench/internal/benchkit"
)

var tmpDirRE = regexp.MustCompile(`/tmp/switchyard-[^/ ]+/`)

// median is the median of each figure over the rounds that succeeded; an
// error when none did.
func median(rs []result, startErr error) result {
	if startErr != nil {
		return result{err: startErr}
	}
	var ok []result
	var lastErr error
	for _, r := range rs {
		if r.err == nil {
			ok = append(ok, r)
		} else {
			lastErr = r.err
		}
	}
	if len(ok) == 0 {
		if lastErr == nil {
			lastErr = errors.New("not measured")
		}
		return result{err: lastErr}
	}
	picked := make([]benchkit.Result, len(ok))
	for i, r := range ok {
		picked[i] = r.Result
	}
	m := result{other: slices.MaxFunc(ok, func(a, b result) int { return cmp.Compare(a.other, b.other) }).other, Result: benchkit.Median(picked)}
	// Every error any round saw, with the clients it aborted (or the
	// times it was reported) summed.
	for _, r := range ok {
		for e, n := range r.Errors {
			if m.Errors == nil {
				m.Errors = map[string]int{}
			}
			m.Errors[e] += n
		}
		for e, n := range r.Other {
			if m.Other == nil {
				m.Other = map[string]int{}
			}
			m.Other[e] += n
		}
	}
	return m
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func printSummary(out io.Writer, workloads []workload, targets []*target, res map[string]map[string]result) {
	fmt.Fprintln(out, "### Summary: TPS (× pgbouncer transaction mode)")
	fmt.Fprintln(out)
	fmt.Fprint(out, "| target |")
	for _, w := range workloads {
		fmt.Fprintf(out, " %s |", strings.TrimPrefix(w.name, "select-only, "))
	}
	fmt.Fprint(out, "\n|---|")
	for range workloads {
		fmt.Fprint(out, "---:|")
	}
	fmt.Fprintln(out)
	for _, t := range targets {
		fmt.Fprintf(out, "| %s |", t.name)
		said := ""
		for _, w := range workloads {
			r, b := res[w.name][t.name], res[w.name][nPgBouncer]
			if r.err != nil {
				if e := short(r.err); e != said {
					fmt.Fprintf(out, " n/a: %s |", e)
					said = e
				} else {
					fmt.Fprint(out, " n/a |")
				}
				continue
			}
			fmt.Fprintf(out, " %.0f (%s) |", r.TPS, ratio(r.TPS, b.TPS))
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out)
}

func printTable(out io.Writer, w workload, targets []*target, res map[string]result) {
	direct, hap, bouncer := res[nDirect], res[nHAProxy], res[nPgBouncer]
	fmt.Fprintf(out, "### %s\n\n", w.name)
	fmt.Fprintln(out, "| target | TPS | latency ms | proxy CPU µs/tx | TPS vs direct | TPS vs HAProxy | TPS vs pgbouncer | CPU vs HAProxy | CPU vs pgbouncer |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, t := range targets {
		r := res[t.name]
		if r.err != nil {
			fmt.Fprintf(out, "| %s | n/a: %s | – | – | – | – | – | – | – |\n", t.name, short(r.err))
			continue
		}
		cpu, cpuHAP, cpuBouncer := "–", "–", "–"
		if t.pid != 0 {
			cpu = fmt.Sprintf("%.1f", r.CPUUsPerTx)
			if hap.err == nil {
				cpuHAP = ratio(r.CPUUsPerTx, hap.CPUUsPerTx)
			}
			if bouncer.err == nil {
				cpuBouncer = ratio(r.CPUUsPerTx, bouncer.CPUUsPerTx)
			}
		}
		fmt.Fprintf(out, "| %s | %.0f | %.3f | %s | %s | %s | %s | %s | %s |\n", t.name, r.TPS, r.LatencyMs, cpu,
			ratio(r.TPS, direct.TPS), ratio(r.TPS, hap.TPS), ratio(r.TPS, bouncer.TPS), cpuHAP, cpuBouncer)
	}
	fmt.Fprintln(out)
}

func printConns(out io.Writer, n int, targets []*target, conns map[string][]connResult) {
	fmt.Fprintf(out, "### %d clients log in at once, then sit idle\n\n", n)
	fmt.Fprintln(out, "| target | all logged in, ms | median login, ms | login time vs pgbouncer | proxy RSS before, MiB | proxy RSS with clients idle, MiB | KiB per idle client | PostgreSQL backends added |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|")
	type row struct {
		total, med, before, idle, backends float64
		err                                error
	}
	rows := map[string]row{}
	for _, t := range targets {
		if t.err != nil {
			rows[t.name] = row{err: t.err}
			continue
		}
		var total, med, before, idle, backends []float64
		var lastErr error
		for _, c := range conns[t.name] {
			if c.err != nil {
				lastErr = c.err
				continue
			}
			total = append(total, float64(c.total)/1e6)
			med = append(med, float64(c.median)/1e6)
			before = append(before, float64(c.rssBefore))
			idle = append(idle, float64(c.rssIdle))
			backends = append(backends, float64(c.backends))
		}
		if len(total) == 0 {
			if lastErr == nil {
				lastErr = errors.New("not measured")
			}
			rows[t.name] = row{err: lastErr}
			continue
		}
		rows[t.name] = row{benchkit.MedianOf(total), benchkit.MedianOf(med), benchkit.MedianOf(before), benchkit.MedianOf(idle), benchkit.MedianOf(backends), nil}
	}
	b := rows[nPgBouncer]
	for _, t := range targets {
		r := rows[t.name]
		if r.err != nil {
			fmt.Fprintf(out, "| %s | n/a: %s | – | – | – | – | – | – |\n", t.name, short(r.err))
			continue
		}
		rssB, rssI, per := "–", "–", "–"
		if t.pid != 0 {
			rssB = fmt.Sprintf("%.1f", r.before/1024)
			rssI = fmt.Sprintf("%.1f", r.idle/1024)
			per = fmt.Sprintf("%.1f", (r.idle-r.before)/float64(n))
		}
		vs := "–"
		if b.err == nil {
			vs = ratio(r.total, b.total)
		}
		fmt.Fprintf(out, "| %s | %.0f | %.1f | %s | %s | %s | %s | %.0f |\n", t.name, r.total, r.med, vs, rssB, rssI, per, r.backends)
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Login: from the start of all connects until the last has its ReadyForQuery (pgconn, no TLS, trust). "+
		"RSS: VmRSS of the proxy 2 s after the last login. Backends added: PostgreSQL client backends while the clients "+
		"sit idle, minus those before the logins (a pooler's pool may already be open, so 0 is possible). "+
		"direct has no proxy process to measure RSS of.")
	fmt.Fprintln(out)
}

// short makes err fit a table cell: its first line, plus the last line
// of a process log when the error carries one.
func short(err error) string { return shortN(err, 200) }

// shortN is short with room for n characters.
func shortN(err error, n int) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	s := strings.TrimSpace(lines[0])
	if len(lines) > 1 {
		for i := len(lines) - 1; i > 0; i-- {
			if l := strings.TrimSpace(lines[i]); l != "" {
				s += " — " + l
				break
			}
		}
	}
	s = tmpDirRE.ReplaceAllString(s, "")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}

// errorsText says what went wrong in a pgbench run: the errors that
// aborted clients, and those it reported without aborting one.
func errorsText(r result) string {
	var s []string
	if len(r.Errors) > 0 {
		s = append(s, "aborted clients: "+countsText(r.Errors, "%s (%d clients)"))
	}
	if len(r.Other) > 0 {
		s = append(s, "also reported: "+countsText(r.Other, "%s (%d×)"))
	}
	if len(s) == 0 {
		return "–"
	}
	return strings.Join(s, "; ")
}

// countsText lists errs, the most frequent first, each formatted by f
// with its count.
func countsText(errs map[string]int, f string) string {
	keys := slices.Collect(maps.Keys(errs))
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(errs[b], errs[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf(f, k, errs[k]))
	}
	return strings.Join(parts, ", ")
}

// printModes prints the query-protocol rows: a summary of TPS by pgbench
// -M against direct (the simple protocol from the select-only row with
// the same client count, when it ran), then a table per mode with what
// failed, then the goal for -M prepared.
func printModes(out io.Writer, clients int, simple *workload, modes []workload, targets []*target, res map[string]map[string]result) {
	cols := modes
	if simple != nil {
		cols = append([]workload{*simple}, modes...)
	}
	colName := func(w workload) string {
		if w.mode == "" {
			return "-M simple"
		}
		return "-M " + w.mode
	}
	fmt.Fprintf(out, "### Summary: %d clients by query protocol, TPS (× direct)\n\n", clients)
	fmt.Fprint(out, "| target |")
	for _, w := range cols {
		fmt.Fprintf(out, " %s |", colName(w))
	}
	fmt.Fprint(out, "\n|---|")
	for range cols {
		fmt.Fprint(out, "---:|")
	}
	fmt.Fprintln(out)
	for _, t := range targets {
		if !modes[0].runs(t) {
			continue
		}
		fmt.Fprintf(out, "| %s |", t.name)
		for _, w := range cols {
			r, d := res[w.name][t.name], res[w.name][nDirect]
			switch {
			case r.err != nil:
				fmt.Fprintf(out, " n/a: %s |", short(r.err))
			case r.Aborted > 0 || r.Failed > 0:
				fmt.Fprintf(out, " %.0f (%s), %s |", r.TPS, ratio(r.TPS, d.TPS), failures(r, clients))
			default:
				fmt.Fprintf(out, " %.0f (%s) |", r.TPS, ratio(r.TPS, d.TPS))
			}
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out)
	for _, w := range modes {
		direct, bouncer := res[w.name][nDirect], res[w.name][nPgBouncer]
		fmt.Fprintf(out, "### %s\n\n", w.name)
		fmt.Fprintln(out, "| target | TPS | latency ms | proxy CPU µs/tx | TPS vs direct | TPS vs pgbouncer | CPU vs pgbouncer | other work's CPU | failed tx | clients aborted | pgbench's errors |")
		fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
		for _, t := range targets {
			if !w.runs(t) {
				continue
			}
			r := res[w.name][t.name]
			if r.err != nil {
				fmt.Fprintf(out, "| %s | n/a: %s | – | – | – | – | – | – | – | – | – |\n", t.name, short(r.err))
				continue
			}
			// No ratios to a pgbouncer run that lost clients: its TPS and
			// CPU per transaction are those of the clients it kept.
			bouncerOK := bouncer.err == nil && bouncer.Aborted == 0 && bouncer.Failed == 0
			cpu, cpuBouncer := "–", "–"
			if t.pid != 0 && r.Txs > 0 {
				cpu = fmt.Sprintf("%.1f", r.CPUUsPerTx)
				if bouncerOK {
					cpuBouncer = ratio(r.CPUUsPerTx, bouncer.CPUUsPerTx)
				}
			}
			vsBouncer := "–"
			if bouncerOK {
				vsBouncer = ratio(r.TPS, bouncer.TPS)
			}
			lat := "–"
			if r.LatencyMs > 0 {
				lat = fmt.Sprintf("%.3f", r.LatencyMs)
			}
			fmt.Fprintf(out, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %d | %d of %d | %s |\n", t.name, r.TPS, lat, cpu,
				ratio(r.TPS, direct.TPS), vsBouncer, cpuBouncer, benchkit.Pct(r.other), r.Failed, r.Aborted, clients,
				strings.ReplaceAll(errorsText(r), "|", `\|`))
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out, "Other work's CPU: the share of the machine's CPU that processes outside the bench (not PostgreSQL, the "+
		"proxies or pgbench) used during the run, the highest over rounds; more than a few per cent makes the row unreliable. "+
		"Failed tx: pgbench's \"number of failed transactions\" (it counts only serialization and deadlock "+
		"errors); any other error aborts the client, and TPS is what all clients completed, the aborted ones before their "+
		"error included. No ratios are given to a pgbouncer run that lost clients.")
	fmt.Fprintln(out)
	for _, w := range modes {
		if w.mode != "prepared" {
			continue
		}
		r, d := res[w.name][nTxn], res[w.name][nDirect]
		verdict := "not measured"
		switch {
		case r.err != nil:
			verdict = "n/a: " + short(r.err)
		case d.err != nil:
			verdict = "n/a: direct not measured"
		case r.Aborted > 0 || r.Failed > 0:
			verdict = fmt.Sprintf("%s with %s — not met", ratio(r.TPS, d.TPS), failures(r, clients))
		case r.TPS >= 0.95*d.TPS:
			verdict = ratio(r.TPS, d.TPS) + " — met"
		default:
			verdict = ratio(r.TPS, d.TPS) + " — not met"
		}
		fmt.Fprintf(out, "Goal: %s with -M prepared ≥ 0.95× direct at %d clients: %s.\n\n", nTxn, clients, verdict)
	}
}

func failures(r result, clients int) string {
	var s []string
	if r.Aborted > 0 {
		s = append(s, fmt.Sprintf("%d of %d clients aborted", r.Aborted, clients))
	}
	if r.Failed > 0 {
		s = append(s, fmt.Sprintf("%d failed tx", r.Failed))
	}
	return strings.Join(s, ", ")
}
