package main

import (
	"errors"
	"fmt"
	"io"
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
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(ok))
		for i, r := range ok {
			v[i] = f(r)
		}
		return medianOf(v)
	}
	return result{Result: benchkit.Result{
		TPS:        pick(func(r result) float64 { return r.TPS }),
		LatencyMs:  pick(func(r result) float64 { return r.LatencyMs }),
		CPUUsPerTx: pick(func(r result) float64 { return r.CPUUsPerTx }),
	}}
}

func medianOf(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
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
		rows[t.name] = row{medianOf(total), medianOf(med), medianOf(before), medianOf(idle), medianOf(backends), nil}
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
func short(err error) string {
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
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}
