package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/admin"
	"github.com/switchyard-proxy/switchyard/internal/events"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// poolSize is [pool] default_pool_size: recognisable in SHOW DATABASES
// and pgbouncer_exporter's pgbouncer_databases_pool_size.
const poolSize = 7

// TestOperatorSurface runs etcd and a real three-node Patroni cluster
// once, Switchyard in front of it with a relay listener for each role
// and a transaction-pooled one, and checks the operator surface against
// the live cluster: /api/status, the counters under traffic, /metrics
// (through promtool), the health checks, the stats page (in Chromium),
// the console (through the real pgbouncer_exporter), and what all of it
// shows of a planned switchover.
//
// With SWITCHYARD_SCREENSHOT set to a path it also saves a screenshot of
// the stats page there, after the switchover, so that
//
//	SWITCHYARD_SCREENSHOT=$PWD/docs/stats-page.png go test -run TestOperatorSurface ./internal/admin/
//
// refreshes the README's image.
func TestOperatorSurface(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs etcd, Patroni, promtool, Chromium and pgbouncer_exporter (run without -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	d, p, leader := testbed.PatroniCluster(t, "etcd")
	var names []string
	for _, n := range p.Nodes {
		names = append(names, n.Name)
	}

	y := testbed.StartYard(t, "surface", fmt.Sprintf(`
[admin]
listen = "127.0.0.1:0"
users = [%q]

[cluster]
name = %q
discovery = "etcd"
[cluster.etcd]
endpoints = [%q]

[[listener]]
name = "rw"
address = "127.0.0.1:0"
role = "primary"

[[listener]]
name = "ro"
address = "127.0.0.1:0"
role = "replica"
fallback = "none"

[[listener]]
name = "pool"
address = "127.0.0.1:0"
role = "primary"
pool_mode = "transaction"

[auth]
type = "trust"

[pool]
default_pool_size = %d

[limits]
connect_timeout = "2s"
shutdown_timeout = "2s"
`, testbed.UserSuper, p.Scope, d.Addrs[0], poolSize))
	s := &surface{base: "http://" + y.AdminAddr().String(),
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}

	// Switchyard is ready once etcd has answered and named the leader,
	// and it knows both replicas.
	s.waitStatus(t, ctx, 30*time.Second, "the cluster as Patroni has it", func(st admin.Status) error {
		return clusterIs(st, leader.Name, names)
	})

	t.Run("status", func(t *testing.T) {
		st := s.status(t, ctx)
		if !st.Ready || st.NotReady != "" {
			t.Errorf("ready = %v (%q), want true", st.Ready, st.NotReady)
		}
		if st.Primary != leader.Name {
			t.Errorf("primary = %q, want Patroni's leader %q", st.Primary, leader.Name)
		}
		ds := st.Discovery
		if ds.State != "fresh" || !strings.Contains(ds.Source, "etcd") || ds.Mode != "etcd" || ds.Polling {
			t.Errorf("discovery: state %q, source %q, mode %q, polling %v; want fresh, etcd, etcd, false",
				ds.State, ds.Source, ds.Mode, ds.Polling)
		}
		if ds.Revision == 0 || ds.LastAnswerAge < 0 || ds.LastChangeAge < 0 {
			t.Errorf("discovery: revision %d, last answer %.1fs ago, last change %.1fs ago; want a revision and both ages ≥ 0",
				ds.Revision, ds.LastAnswerAge, ds.LastChangeAge)
		}
		if err := clusterIs(st, leader.Name, names); err != nil {
			t.Error(err)
		}
		for _, m := range st.Members {
			node := p.Node(m.Name)
			if node == nil {
				continue
			}
			if m.Addr != node.Addr() {
				t.Errorf("member %s: addr %q, want %q", m.Name, m.Addr, node.Addr())
			}
			if m.Timeline <= 0 {
				t.Errorf("member %s (%s): timeline %d, want > 0", m.Name, m.Role, m.Timeline)
			}
			if m.Role == topology.RoleReplica && m.Lag < 0 {
				t.Errorf("replica %s: lag %d, want known (≥ 0)", m.Name, m.Lag)
			}
			if m.State != "running" && m.State != "streaming" {
				t.Errorf("member %s: state %q, want running or streaming", m.Name, m.State)
			}
		}
		for _, want := range []struct{ name, role, mode string }{
			{"rw", "primary", "none"}, {"ro", "replica", "none"}, {"pool", "primary", "transaction"},
		} {
			l, ok := listener(st, want.name)
			switch {
			case !ok:
				t.Errorf("listener %s missing from %+v", want.name, st.Listeners)
			case l.Role != want.role || l.PoolMode != want.mode || l.Paused:
				t.Errorf("listener %s: role %q, pool_mode %q, paused %v; want %s, %s, not paused",
					want.name, l.Role, l.PoolMode, l.Paused, want.role, want.mode)
			case l.Address != y.Address(want.name):
				t.Errorf("listener %s: address %q, want %q", want.name, l.Address, y.Address(want.name))
			}
		}
		if len(st.Events) == 0 || !strings.HasPrefix(st.Events[len(st.Events)-1].Message, "first topology from etcd") {
			t.Errorf("events: want the oldest to be the first topology from etcd, got %+v", st.Events)
		}
	})

	// poolQueries is how many queries went through the pool listener.
	var poolQueries int
	t.Run("counters", func(t *testing.T) {
		before := s.status(t, ctx)
		ran := map[string]int{}
		for _, l := range []string{"rw", "ro", "pool"} {
			n, err := runQueries(ctx, y.DSN(l, testbed.UserSuper), 2, 10)
			if err != nil {
				t.Fatalf("queries through %s: %v", l, err)
			}
			ran[l] = n
		}
		poolQueries = ran["pool"]
		after := s.status(t, ctx)
		for _, name := range []string{"rw", "ro", "pool"} {
			b, _ := listener(before, name)
			a, ok := listener(after, name)
			if !ok {
				t.Errorf("listener %s missing after the traffic", name)
				continue
			}
			t.Logf("%s after %d queries in 2 sessions: sessions +%d, queries +%d, transactions +%d, bytes in +%d, out +%d",
				name, ran[name], a.Sessions-b.Sessions, a.Queries-b.Queries, a.Transactions-b.Transactions,
				a.BytesIn-b.BytesIn, a.BytesOut-b.BytesOut)
			for _, c := range []struct {
				what     string
				from, to int64
				atLeast  int64
			}{
				{"sessions_total", b.Sessions, a.Sessions, 2},
				{"queries", b.Queries, a.Queries, int64(ran[name])},
				{"transactions", b.Transactions, a.Transactions, int64(ran[name])},
				{"bytes_in", b.BytesIn, a.BytesIn, 1},
				{"bytes_out", b.BytesOut, a.BytesOut, 1},
			} {
				if c.to-c.from < c.atLeast {
					t.Errorf("listener %s: %s went from %d to %d after %d queries in 2 sessions; want it to grow by at least %d",
						name, c.what, c.from, c.to, ran[name], c.atLeast)
				}
			}
			if a.Errors != b.Errors || a.Refused != b.Refused || a.Killed != b.Killed {
				t.Errorf("listener %s: errors %d→%d, refused %d→%d, killed %d→%d; want no change",
					name, b.Errors, a.Errors, b.Refused, a.Refused, b.Killed, a.Killed)
			}
		}
		var found bool
		for _, m := range after.Members {
			for _, ps := range m.Pools {
				if ps.Listener != "pool" {
					t.Errorf("member %s lists a pool of listener %q: only pooled listeners have pools", m.Name, ps.Listener)
				}
				if m.Name == leader.Name && ps.Listener == "pool" && ps.Database == testbed.DefaultDB && ps.User == testbed.UserSuper {
					found = true
					if ps.Idle < 1 || ps.Active != 0 || ps.Waiting != 0 || ps.Idle > poolSize {
						t.Errorf("pool %s/%s/%s on %s after its clients left: active %d, idle %d, waiting %d; want 0, 1..%d, 0",
							ps.Listener, ps.Database, ps.User, m.Name, ps.Active, ps.Idle, ps.Waiting, poolSize)
					}
				}
			}
			if m.Name != leader.Name && len(m.Pools) > 0 {
				t.Errorf("replica %s has pools %+v: the pooled listener serves the primary only", m.Name, m.Pools)
			}
		}
		if !found {
			t.Errorf("the primary %s lists no pool pool/%s/%s: members %+v", leader.Name, testbed.DefaultDB, testbed.UserSuper, after.Members)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		body := s.mustGet(t, ctx, "/metrics", http.StatusOK)
		if out, err := testbed.CheckMetrics(ctx, body); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("promtool check metrics: err %v, output:\n%s", err, out)
		}
		ms := parseOrFail(t, body)
		if v, ok := one(t, ms, "switchyard_client_query_duration_seconds_count", "listener", "pool"); ok && v < float64(poolQueries) {
			t.Errorf(`switchyard_client_query_duration_seconds_count{listener="pool"} = %v, want ≥ %d (the queries run through pool)`, v, poolQueries)
		}
		for _, l := range []string{"rw", "ro", "pool"} {
			if v, ok := one(t, ms, "switchyard_client_sessions_total", "listener", l); ok && v < 2 {
				t.Errorf(`switchyard_client_sessions_total{listener=%q} = %v, want ≥ 2`, l, v)
			}
		}
		if v, ok := one(t, ms, "switchyard_pool_server_connections", "listener", "pool", "member", leader.Name,
			"database", testbed.DefaultDB, "user", testbed.UserSuper, "state", "idle"); ok && v < 1 {
			t.Errorf("switchyard_pool_server_connections idle on %s = %v, want ≥ 1", leader.Name, v)
		}
		if v, ok := one(t, ms, "switchyard_discovery_state", "state", "fresh"); ok && v != 1 {
			t.Errorf(`switchyard_discovery_state{state="fresh"} = %v, want 1`, v)
		}
		for _, st := range []string{"starting", "stale", "fail-closed"} {
			if v, ok := one(t, ms, "switchyard_discovery_state", "state", st); ok && v != 0 {
				t.Errorf(`switchyard_discovery_state{state=%q} = %v, want 0`, st, v)
			}
		}
		if v, ok := one(t, ms, "switchyard_topology_primary_known"); ok && v != 1 {
			t.Errorf("switchyard_topology_primary_known = %v, want 1", v)
		}
		if v, ok := one(t, ms, "switchyard_topology_members", "role", "replica", "healthy", "true"); ok && v != 2 {
			t.Errorf(`switchyard_topology_members{role="replica",healthy="true"} = %v, want 2`, v)
		}
		for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
			if v, ok := one(t, ms, name); ok && v <= 0 {
				t.Errorf("%s = %v, want > 0", name, v)
			}
		}
	})

	t.Run("health", func(t *testing.T) {
		for _, c := range []struct{ path, key, want string }{
			{"/health", "status", "up"},
			{"/ready", "status", "ready"},
			{"/ready", "primary", leader.Name},
			{"/primary", "role", "primary"},
			{"/primary", "primary", leader.Name},
			{"/replica", "role", "replica"},
		} {
			var body map[string]any
			if err := json.Unmarshal([]byte(s.mustGet(t, ctx, c.path, http.StatusOK)), &body); err != nil {
				t.Errorf("GET %s: %v", c.path, err)
				continue
			}
			if got := fmt.Sprint(body[c.key]); got != c.want {
				t.Errorf("GET %s: %s = %q, want %q (%v)", c.path, c.key, got, c.want, body)
			}
		}
	})

	t.Run("pgbouncer_exporter", func(t *testing.T) {
		dsn := fmt.Sprintf("postgres://%s:%s@%s/pgbouncer?sslmode=disable",
			testbed.UserSuper, url.QueryEscape(testbed.Password), y.Address("pool"))
		e, err := testbed.StartPgbouncerExporter(ctx, dsn)
		if err != nil {
			t.Fatalf("starting pgbouncer_exporter (run `make deps` if it is missing): %v", err)
		}
		t.Cleanup(e.Close)
		text, err := e.Scrape(ctx)
		if err != nil {
			t.Fatalf("scraping pgbouncer_exporter: %v\n%s", err, e.LogTail())
		}
		// The console's own view, right after the scrape; no traffic runs.
		console := y.DSN("pool", testbed.UserSuper) + " dbname=pgbouncer"
		pools, err := consoleShow(ctx, console, "SHOW POOLS")
		if err != nil {
			t.Fatal(err)
		}
		totals, err := consoleShow(ctx, console, "SHOW STATS_TOTALS")
		if err != nil {
			t.Fatal(err)
		}
		ms := parseOrFail(t, text)
		if v, ok := one(t, ms, "pgbouncer_up"); !ok || v != 1 {
			t.Fatalf("pgbouncer_up = %v, want 1; the exporter's log:\n%s", v, e.LogTail())
		}
		if _, ok := one(t, ms, "pgbouncer_version_info", "version", "Switchyard test"); !ok {
			t.Errorf("no pgbouncer_version_info for SHOW VERSION's %q", "Switchyard test")
		}
		// A column the exporter cannot parse does not turn pgbouncer_up
		// to 0: it only logs it.
		if strings.Contains(e.LogTail(), "level=ERROR") || strings.Contains(e.LogTail(), "error parsing") {
			t.Errorf("pgbouncer_exporter logged problems:\n%s", e.LogTail())
		}

		user := testbed.UserSuper
		rowName := "pool/" + testbed.DefaultDB
		row := findRow(pools, "database", rowName, "user", user)
		if row == nil {
			t.Fatalf("SHOW POOLS has no row for %s, user %s: %v", rowName, user, pools)
		}
		for col, metric := range map[string]string{
			"cl_active":  "pgbouncer_pools_client_active_connections",
			"cl_waiting": "pgbouncer_pools_client_waiting_connections",
			"sv_active":  "pgbouncer_pools_server_active_connections",
			"sv_idle":    "pgbouncer_pools_server_idle_connections",
			"sv_used":    "pgbouncer_pools_server_used_connections",
			"sv_login":   "pgbouncer_pools_server_login_connections",
			"maxwait":    "pgbouncer_pools_client_maxwait_seconds",
		} {
			v, ok := one(t, ms, metric, "database", rowName, "user", user)
			if !ok {
				continue
			}
			if want, err := strconv.ParseFloat(row[col], 64); err != nil || v != want {
				t.Errorf("%s{database=%q} = %v, SHOW POOLS %s = %q", metric, rowName, v, col, row[col])
			}
		}
		if v, ok := one(t, ms, "pgbouncer_pools_server_idle_connections", "database", rowName, "user", user); ok && (v < 1 || v > poolSize) {
			t.Errorf("pgbouncer_pools_server_idle_connections{database=%q} = %v after the traffic, want 1..%d", rowName, v, poolSize)
		}

		trow := findRow(totals, "database", rowName)
		if trow == nil {
			t.Fatalf("SHOW STATS_TOTALS has no row %s: %v", rowName, totals)
		}
		for col, metric := range map[string]string{
			"query_count": "pgbouncer_stats_totals_queries_pooled_total",
			"xact_count":  "pgbouncer_stats_totals_sql_transactions_pooled_total",
		} {
			v, ok := one(t, ms, metric, "database", rowName)
			if !ok {
				continue
			}
			if want, err := strconv.ParseFloat(trow[col], 64); err != nil || v != want {
				t.Errorf("%s{database=%q} = %v, SHOW STATS_TOTALS %s = %q", metric, rowName, v, col, trow[col])
			}
			if v < float64(poolQueries) {
				t.Errorf("%s{database=%q} = %v, want ≥ %d (the queries run through pool)", metric, rowName, v, poolQueries)
			}
		}
		if v, ok := one(t, ms, "pgbouncer_stats_totals_received_bytes_total", "database", rowName); ok && v <= 0 {
			t.Errorf("pgbouncer_stats_totals_received_bytes_total{database=%q} = %v, want > 0", rowName, v)
		}

		if v, ok := one(t, ms, "pgbouncer_databases_pool_size", "name", rowName, "database", testbed.DefaultDB,
			"pool_mode", "transaction", "host", "127.0.0.1", "port", strconv.Itoa(leader.PGPort)); ok && v != poolSize {
			t.Errorf("pgbouncer_databases_pool_size{name=%q} = %v, want default_pool_size %d", rowName, v, poolSize)
		}
		for _, relay := range []string{"rw", "ro"} {
			if len(pick(ms, "pgbouncer_databases_current_connections", "name", relay)) != 1 {
				t.Errorf("pgbouncer_databases_current_connections has no single series for the relay listener %s", relay)
			}
		}
	})

	t.Run("page", func(t *testing.T) {
		html := s.mustGet(t, ctx, "/", http.StatusOK)
		for _, n := range names {
			if !strings.Contains(html, fmt.Sprintf(`data-member="%s"`, n)) || !strings.Contains(html, "<b>"+n+"</b>") {
				t.Errorf("the stats page does not name member %s", n)
			}
		}
		for _, l := range []string{"rw", "ro", "pool"} {
			if !strings.Contains(html, fmt.Sprintf(`data-listener="%s"`, l)) {
				t.Errorf("the stats page does not show listener %s", l)
			}
		}
		page := s.browserURL(t)
		shot := filepath.Join(t.TempDir(), "stats-page.png")
		screenshot(t, ctx, page, shot)
		cctx, cancel := context.WithTimeout(ctx, chromiumTimeout)
		defer cancel()
		dom, err := testbed.DumpDOM(cctx, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range append(slices.Clone(names), "fresh", "ready") {
			if !strings.Contains(dom, want) {
				t.Errorf("Chromium's DOM of the stats page lacks %q", want)
			}
		}
	})

	t.Run("switchover", func(t *testing.T) {
		candidate := p.Nodes[0]
		for _, n := range p.Nodes {
			if n != leader {
				candidate = n
				break
			}
		}
		before := s.status(t, ctx)
		mBefore := parseOrFail(t, s.mustGet(t, ctx, "/metrics", http.StatusOK))
		changesBefore, _ := one(t, mBefore, "switchyard_topology_role_changes_total", "role", "primary")
		gapsBefore := sum(pick(mBefore, "switchyard_topology_leader_gap_duration_seconds_count"))

		if err := p.WaitHealthy(ctx, leader.Name); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := p.Switchover(ctx, leader.Name, candidate.Name); err != nil {
			t.Fatal(err)
		}
		after := s.waitStatus(t, ctx, 30*time.Second, candidate.Name+" as the primary", func(st admin.Status) error {
			if st.Primary != candidate.Name || !st.Ready {
				return fmt.Errorf("primary %q, ready %v (%s)", st.Primary, st.Ready, st.NotReady)
			}
			return nil
		})
		t.Logf("Switchyard named %s primary %v after the switchover began", candidate.Name, time.Since(start).Round(time.Millisecond))
		if after.Discovery.Revision <= before.Discovery.Revision {
			t.Errorf("discovery revision %d after the switchover, %d before: want it to grow",
				after.Discovery.Revision, before.Discovery.Revision)
		}
		var promoted, gapClosed bool
		for _, ev := range after.Events {
			if ev.Kind != "topology" {
				continue
			}
			promoted = promoted || strings.HasPrefix(ev.Message, candidate.Name+": replica → primary")
			gapClosed = gapClosed || strings.HasPrefix(ev.Message, candidate.Name+" is the primary, ")
		}
		if !promoted || !gapClosed {
			t.Errorf("events: want %q and %q among them (found %v, %v):\n%s", candidate.Name+": replica → primary",
				candidate.Name+" is the primary, … after the last one was lost", promoted, gapClosed, eventList(after.Events))
		}

		mAfter := parseOrFail(t, s.mustGet(t, ctx, "/metrics", http.StatusOK))
		if v, ok := one(t, mAfter, "switchyard_topology_role_changes_total", "role", "primary"); ok && v < changesBefore+1 {
			t.Errorf(`switchyard_topology_role_changes_total{role="primary"} = %v after the switchover, %v before: want it to grow`, v, changesBefore)
		}
		if v := sum(pick(mAfter, "switchyard_topology_leader_gap_duration_seconds_count")); v < gapsBefore+1 {
			t.Errorf("switchyard_topology_leader_gap_duration_seconds_count = %v after the switchover, %v before: want it to grow", v, gapsBefore)
		}

		// The old leader comes back as a replica of the new one.
		final := s.waitStatus(t, ctx, 90*time.Second, leader.Name+" back as a replica", func(st admin.Status) error {
			return clusterIs(st, candidate.Name, names)
		})
		t.Logf("events after the switchover:\n%s", eventList(final.Events))
		if err := p.WaitHealthy(ctx, candidate.Name); err != nil {
			t.Fatal(err)
		}

		// The stats page shows what /api/status does: the new primary in
		// the primary's colours, the old one back as a replica, and the
		// switchover among the events; in the HTML served and in the DOM
		// Chromium renders from it.
		rows := map[string]*regexp.Regexp{}
		for name, role := range map[string]string{candidate.Name: "primary", leader.Name: "replica"} {
			n := regexp.QuoteMeta(name)
			rows[name+" as "+role] = regexp.MustCompile(fmt.Sprintf(`<tr class="%s" data-member="%s">\s*<td><b>%s</b></td><td class="role">%s</td>`, role, n, n, role))
		}
		pageShows := func(what, page string) {
			t.Helper()
			for row, re := range rows {
				if !re.MatchString(page) {
					t.Errorf("%s after the switchover does not show %s", what, row)
				}
			}
			for _, ev := range []string{candidate.Name + ": replica → primary", candidate.Name + " is the primary, "} {
				if !strings.Contains(page, `<td class="ev">`+ev) {
					t.Errorf("%s after the switchover lacks the event %q", what, ev)
				}
			}
			if !strings.Contains(page, "<title>Switchyard — "+candidate.Name+"</title>") {
				t.Errorf("%s after the switchover does not name %s primary in its title", what, candidate.Name)
			}
		}
		pageShows("the stats page", s.mustGet(t, ctx, "/?refresh=0", http.StatusOK))
		cctx, ccancel := context.WithTimeout(ctx, chromiumTimeout)
		dom, err := testbed.DumpDOM(cctx, s.browserURL(t))
		ccancel()
		if err != nil {
			t.Fatal(err)
		}
		pageShows("Chromium's DOM of the stats page", dom)

		if out := os.Getenv("SWITCHYARD_SCREENSHOT"); out != "" {
			// Some traffic, so that the page shows sessions at work.
			for _, l := range []string{"rw", "ro", "pool"} {
				if _, err := runQueries(ctx, y.DSN(l, testbed.UserSuper), 3, 5); err != nil {
					t.Errorf("queries through %s after the switchover: %v", l, err)
				}
			}
			hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
			held, err := pgconn.Connect(hctx, y.DSN("ro", testbed.UserSuper))
			hcancel()
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close(context.Background())
			screenshot(t, ctx, s.browserURL(t), out)
			t.Logf("saved the stats page to %s", out)
		}
	})
}

// surface reaches a Switchyard's admin HTTP endpoint.
type surface struct {
	base   string
	client *http.Client
}

func (s *surface) get(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (s *surface) mustGet(t *testing.T, ctx context.Context, path string, code int) string {
	t.Helper()
	got, body, err := s.get(ctx, path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if got != code {
		t.Fatalf("GET %s: %d, want %d: %.500s", path, got, code, body)
	}
	return body
}

func (s *surface) fetchStatus(ctx context.Context) (admin.Status, error) {
	var st admin.Status
	code, body, err := s.get(ctx, "/api/status")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("GET /api/status: %d: %.500s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return st, fmt.Errorf("GET /api/status: %w: %.500s", err, body)
	}
	return st, nil
}

func (s *surface) status(t *testing.T, ctx context.Context) admin.Status {
	t.Helper()
	st, err := s.fetchStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitStatus polls /api/status until cond accepts it, and fails the test
// with cond's last complaint if it does not within d.
func (s *surface) waitStatus(t *testing.T, ctx context.Context, d time.Duration, what string, cond func(admin.Status) error) admin.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		st, err := s.fetchStatus(ctx)
		if err == nil {
			if err = cond(st); err == nil {
				return st
			}
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("/api/status did not show %s within %v: %v", what, d, last)
		case <-tick.C:
		}
	}
}

// clusterIs checks that st shows a ready Switchyard, fresh from etcd,
// with primary the primary and every other member a healthy replica.
func clusterIs(st admin.Status, primary string, names []string) error {
	if !st.Ready || st.Primary != primary || st.Discovery.State != "fresh" {
		return fmt.Errorf("ready %v (%s), primary %q (want %q), discovery %q", st.Ready, st.NotReady, st.Primary, primary, st.Discovery.State)
	}
	var got []string
	for _, m := range st.Members {
		got = append(got, fmt.Sprintf("%s=%s(healthy %v)", m.Name, m.Role, m.Healthy))
	}
	if len(st.Members) != len(names) {
		return fmt.Errorf("members %v, want %v", got, names)
	}
	for _, m := range st.Members {
		want := topology.RoleReplica
		if m.Name == primary {
			want = topology.RolePrimary
		}
		if !slices.Contains(names, m.Name) || m.Role != want || !m.Healthy {
			return fmt.Errorf("members %v: want %s the primary and the others healthy replicas", got, primary)
		}
	}
	return nil
}

func listener(st admin.Status, name string) (admin.ListenerStatus, bool) {
	for _, l := range st.Listeners {
		if l.Name == name {
			return l, true
		}
	}
	return admin.ListenerStatus{}, false
}

// eventList renders events one a line, oldest first.
func eventList(evs []events.Event) string {
	var b strings.Builder
	for _, ev := range slices.Backward(evs) {
		fmt.Fprintf(&b, "  %s %-9s %s\n", ev.Time.Format("15:04:05.000"), ev.Kind, ev.Message)
	}
	return b.String()
}

// runQueries opens sessions sessions through dsn, runs perSession
// queries in each (alternately simple and extended protocol) and closes
// them; it returns how many queries ran.
func runQueries(ctx context.Context, dsn string, sessions, perSession int) (int, error) {
	n := 0
	for range sessions {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		c, err := pgconn.Connect(cctx, dsn)
		if err != nil {
			cancel()
			return n, err
		}
		for i := range perSession {
			if i%2 == 0 {
				_, err = c.Exec(cctx, "SELECT 1").ReadAll()
			} else {
				err = c.ExecParams(cctx, "SELECT $1::int", [][]byte{[]byte(strconv.Itoa(i))}, nil, nil, nil).Read().Err
			}
			if err != nil {
				break
			}
			n++
		}
		c.Close(cctx)
		cancel()
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// consoleShow runs a SHOW command on the admin console and returns its
// rows as column → value (NULL as "").
func consoleShow(ctx context.Context, dsn, cmd string) ([]map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	defer c.Close(ctx)
	res, err := c.Exec(ctx, cmd).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("console %s: %w", cmd, err)
	}
	if len(res) != 1 {
		return nil, fmt.Errorf("console %s: %d results, want 1", cmd, len(res))
	}
	var rows []map[string]string
	for _, r := range res[0].Rows {
		row := map[string]string{}
		for i, f := range res[0].FieldDescriptions {
			row[f.Name] = string(r[i])
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// findRow returns the first row whose columns have the values of kv
// (column, value pairs).
func findRow(rows []map[string]string, kv ...string) map[string]string {
next:
	for _, r := range rows {
		for i := 0; i < len(kv); i += 2 {
			if r[kv[i]] != kv[i+1] {
				continue next
			}
		}
		return r
	}
	return nil
}

// chromiumTimeout bounds one headless Chromium run.
const chromiumTimeout = 90 * time.Second

// browserURL is the stats page rendered once: a page that reloads itself
// keeps headless Chromium's virtual time from ever running out.
func (s *surface) browserURL(t *testing.T) string { return s.base + "/?refresh=0" }

// screenshot takes a 1280×900 screenshot of url into path and checks that
// it shows something.
func screenshot(t *testing.T, ctx context.Context, url, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, chromiumTimeout)
	defer cancel()
	if err := testbed.Screenshot(ctx, url, path, 1280, 900); err != nil {
		t.Fatal(err)
	}
	blank, err := testbed.PNGBlank(path)
	if err != nil {
		t.Fatal(err)
	}
	if blank {
		t.Errorf("the screenshot of the stats page (%s) is blank", path)
	}
}

// sample is one line of a Prometheus text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func (m sample) String() string {
	var ls []string
	for k, v := range m.labels {
		ls = append(ls, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(ls)
	return fmt.Sprintf("%s{%s} %v", m.name, strings.Join(ls, ","), m.value)
}

// parseExposition reads the samples of a text exposition.
func parseExposition(text string) ([]sample, error) {
	var out []sample
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		m := sample{labels: map[string]string{}}
		j := strings.IndexAny(line, "{ ")
		if j < 0 {
			return nil, fmt.Errorf("line %d: %q: no value", i+1, line)
		}
		m.name, line = line[:j], line[j:]
		if line[0] == '{' {
			line = line[1:]
			for {
				line = strings.TrimLeft(line, ", ")
				if line == "" {
					return nil, fmt.Errorf("line %d: unterminated labels", i+1)
				}
				if line[0] == '}' {
					line = line[1:]
					break
				}
				eq := strings.Index(line, `="`)
				if eq < 0 {
					return nil, fmt.Errorf("line %d: bad label in %q", i+1, line)
				}
				key := line[:eq]
				line = line[eq+2:]
				var val strings.Builder
				k := 0
				for ; k < len(line) && line[k] != '"'; k++ {
					if line[k] == '\\' && k+1 < len(line) {
						k++
						switch line[k] {
						case 'n':
							val.WriteByte('\n')
						default:
							val.WriteByte(line[k])
						}
						continue
					}
					val.WriteByte(line[k])
				}
				if k == len(line) {
					return nil, fmt.Errorf("line %d: unterminated label value", i+1)
				}
				m.labels[key] = val.String()
				line = line[k+1:]
			}
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil, fmt.Errorf("line %d: no value", i+1)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		m.value = v
		out = append(out, m)
	}
	return out, nil
}

func parseOrFail(t *testing.T, text string) []sample {
	t.Helper()
	ms, err := parseExposition(text)
	if err != nil {
		t.Fatalf("parsing the exposition: %v", err)
	}
	return ms
}

// pick returns the samples called name whose labels include kv (name,
// value pairs).
func pick(ms []sample, name string, kv ...string) []sample {
	var out []sample
next:
	for _, m := range ms {
		if m.name != name {
			continue
		}
		for i := 0; i < len(kv); i += 2 {
			if v, ok := m.labels[kv[i]]; !ok || v != kv[i+1] {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// one returns the value of the single sample pick finds, failing the
// test (but not stopping it) when there is none or more than one.
func one(t *testing.T, ms []sample, name string, kv ...string) (float64, bool) {
	t.Helper()
	got := pick(ms, name, kv...)
	if len(got) != 1 {
		var same []string
		for _, m := range pick(ms, name) {
			same = append(same, m.String())
		}
		t.Errorf("%s%v: %d series, want 1; the series of that name:\n%s", name, kv, len(got), strings.Join(same, "\n"))
		return math.NaN(), false
	}
	return got[0].value, true
}

func sum(ms []sample) float64 {
	var v float64
	for _, m := range ms {
		v += m.value
	}
	return v
}
