package admin

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/router"
)

// Column types as pgbouncer sends them.
const (
	text    = 25
	int4    = 23
	int8    = 20
	numeric = 1700
)

// table builds a SHOW result: columns from "name:type" pairs.
type table struct{ r proxy.Result }

func newTable(cols ...any) *table {
	t := &table{r: proxy.Result{Tag: "SHOW"}}
	for i := 0; i < len(cols); i += 2 {
		t.r.Columns = append(t.r.Columns, proxy.Column{Name: cols[i].(string), OID: uint32(cols[i+1].(int))})
	}
	return t
}

// row appends values: string, int types, nil (NULL), bool (0/1).
func (t *table) row(vals ...any) {
	out := make([]*string, len(vals))
	for i, v := range vals {
		var s string
		switch x := v.(type) {
		case nil:
			continue
		case string:
			s = x
		case bool:
			s = "0"
			if x {
				s = "1"
			}
		default:
			s = fmt.Sprint(x)
		}
		out[i] = &s
	}
	t.r.Rows = append(t.r.Rows, out)
}

var shows = map[string]func(*Console) proxy.Result{
	"POOLS":          (*Console).showPools,
	"STATS":          (*Console).showStats,
	"STATS_TOTALS":   (*Console).showStatsTotals,
	"STATS_AVERAGES": (*Console).showStatsAverages,
	"CLIENTS":        (*Console).showClients,
	"SERVERS":        (*Console).showServers,
	"DATABASES":      (*Console).showDatabases,
	"LISTS":          (*Console).showLists,
	"CONFIG":         (*Console).showConfig,
	"VERSION":        (*Console).showVersion,
	"TOPOLOGY":       (*Console).showTopology,
	"LISTENERS":      (*Console).showListeners,
	"HELP":           (*Console).showHelp,
}

func (c *Console) show(what string) (proxy.Result, bool) {
	f, ok := shows[what]
	if !ok {
		return proxy.Result{}, false
	}
	return f(c), true
}

func (c *Console) showHelp() proxy.Result {
	return proxy.Result{Tag: "SHOW", Notice: "Console usage\n" +
		"\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|LISTS|VERSION\n" +
		"\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES\n" +
		"\tSHOW TOPOLOGY|LISTENERS (Switchyard's own)\n" +
		"\tPAUSE [<db>]\n\tRESUME [<db>]\n\tRECONNECT [<db>]\n\tKILL <db>\n\tRELOAD\n\tSHUTDOWN\n" +
		"<db> is a listener (\"rw\") or one database of a pooled listener (\"rw/app\", quoted)"}
}

func (c *Console) showVersion() proxy.Result {
	t := newTable("version", text)
	t.row("Switchyard " + c.s.deps.Version)
	return t.r
}

// poolKey is a SHOW POOLS row: a database row name and a user.
type poolKey struct{ db, user string }

type poolRow struct {
	clActive, clWaiting, svActive, svIdle, svLogin int
	maxWait                                        time.Duration
	mode                                           string
}

// pools aggregates pools over members and clients into SHOW POOLS rows.
func (c *Console) pools() (map[poolKey]*poolRow, []poolKey) {
	rows := map[poolKey]*poolRow{}
	get := func(k poolKey, mode string) *poolRow {
		r := rows[k]
		if r == nil {
			r = &poolRow{mode: mode}
			rows[k] = r
		}
		return r
	}
	p := c.s.deps.Proxy
	modes := map[string]string{}
	for _, l := range p.Listeners() {
		modes[l.Name] = l.Mode.String()
		for _, ps := range l.Pools {
			r := get(poolKey{l.Name + "/" + ps.ID.Database, ps.ID.User}, l.Mode.String())
			r.svActive += ps.Active
			r.svIdle += ps.Idle
			r.svLogin += ps.Login
			r.maxWait = max(r.maxWait, ps.MaxWait)
		}
	}
	get(poolKey{"pgbouncer", "pgbouncer"}, "statement")
	for _, cl := range p.Clients() {
		if proxy.IsConsole(cl.Database) {
			rows[poolKey{"pgbouncer", "pgbouncer"}].clActive++
			continue
		}
		r := get(poolKey{cl.Database, cl.User}, modes[cl.Listener])
		if cl.State == "waiting" {
			r.clWaiting++
		} else {
			r.clActive++
		}
		if p.IsRelay(cl.Listener) && cl.ServerPID != 0 {
			r.svActive++
		}
	}
	keys := make([]poolKey, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b poolKey) int {
		return strings.Compare(a.db+"\x00"+a.user, b.db+"\x00"+b.user)
	})
	return rows, keys
}

func (c *Console) showPools() proxy.Result {
	t := newTable("database", text, "user", text, "cl_active", int4, "cl_waiting", int4, "cl_active_cancel_req", int4,
		"cl_waiting_cancel_req", int4, "sv_active", int4, "sv_active_cancel", int4, "sv_being_canceled", int4,
		"sv_idle", int4, "sv_used", int4, "sv_tested", int4, "sv_login", int4, "maxwait", int4, "maxwait_us", int4,
		"pool_mode", text, "load_balance_hosts", text)
	rows, keys := c.pools()
	for _, k := range keys {
		r := rows[k]
		secs := int64(r.maxWait / time.Second)
		us := int64((r.maxWait % time.Second) / time.Microsecond)
		t.row(k.db, k.user, r.clActive, r.clWaiting, 0, 0, r.svActive, 0, 0, r.svIdle, 0, 0, r.svLogin, secs, us, r.mode, nil)
	}
	return t.r
}

// statsRows are the SHOW STATS rows, by database row name.
func (c *Console) statsRows() []proxy.TotalsSnapshot {
	var out []proxy.TotalsSnapshot
	for _, l := range c.s.deps.Proxy.Listeners() {
		out = append(out, l.Totals...)
	}
	slices.SortFunc(out, func(a, b proxy.TotalsSnapshot) int { return strings.Compare(a.Database, b.Database) })
	return out
}

func totalsValues(t proxy.TotalsSnapshot) []any {
	return []any{t.Assignments, t.Xacts, t.Queries, t.Received, t.Sent, t.XactTime, t.QueryTime, t.WaitTime,
		t.ClientParses, t.ServerParses, t.Binds}
}

var statsNames = []string{"server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
	"xact_time", "query_time", "wait_time", "client_parse_count", "server_parse_count", "bind_count"}

func (c *Console) showStatsTotals() proxy.Result {
	cols := []any{"database", text}
	for _, n := range statsNames {
		cols = append(cols, n, numeric)
	}
	t := newTable(cols...)
	for _, r := range c.statsRows() {
		t.row(append([]any{r.Database}, totalsValues(r)...)...)
	}
	return t.r
}

func (c *Console) showStatsAverages() proxy.Result {
	cols := []any{"database", text}
	for i, n := range statsNames {
		if i >= 8 { // pgbouncer 1.24 names these three with a prefix
			n = "avg_" + n
		}
		cols = append(cols, n, numeric)
	}
	t := newTable(cols...)
	for _, r := range c.statsRows() {
		t.row(append([]any{r.Database}, c.s.avg.of(r)...)...)
	}
	return t.r
}

func (c *Console) showStats() proxy.Result {
	total := []string{"total_server_assignment_count", "total_xact_count", "total_query_count", "total_received",
		"total_sent", "total_xact_time", "total_query_time", "total_wait_time", "total_client_parse_count",
		"total_server_parse_count", "total_bind_count"}
	avg := []string{"avg_server_assignment_count", "avg_xact_count", "avg_query_count", "avg_recv", "avg_sent",
		"avg_xact_time", "avg_query_time", "avg_wait_time", "avg_client_parse_count", "avg_server_parse_count",
		"avg_bind_count"}
	cols := []any{"database", text}
	for _, n := range append(total, avg...) {
		cols = append(cols, n, numeric)
	}
	t := newTable(cols...)
	for _, r := range c.statsRows() {
		vals := append([]any{r.Database}, totalsValues(r)...)
		t.row(append(vals, c.s.avg.of(r)...)...)
	}
	return t.r
}

// averages are SHOW STATS's avg_* columns, as pgbouncer computes them:
// over the window since the snapshot taken at the previous stats period,
// counts and bytes per second, times per transaction, request or
// assignment (µs).
type averages struct {
	mu   sync.Mutex
	at   time.Time
	prev map[string]proxy.TotalsSnapshot
}

// statsPeriod is pgbouncer's default stats_period.
const statsPeriod = 60 * time.Second

// sample takes the snapshot the next window starts from.
func (a *averages) sample(rows []proxy.TotalsSnapshot, now time.Time) {
	m := make(map[string]proxy.TotalsSnapshot, len(rows))
	for _, r := range rows {
		m[r.Database] = r
	}
	a.mu.Lock()
	a.at, a.prev = now, m
	a.mu.Unlock()
}

func (a *averages) of(cur proxy.TotalsSnapshot) []any {
	a.mu.Lock()
	prev, at := a.prev[cur.Database], a.at
	a.mu.Unlock()
	secs := time.Since(at).Seconds()
	if at.IsZero() || secs <= 0 {
		secs = 1
	}
	rate := func(now, then int64) int64 { return int64(float64(now-then) / secs) }
	per := func(num, den int64) int64 {
		if den <= 0 {
			return 0
		}
		return num / den
	}
	dx, dq, da := cur.Xacts-prev.Xacts, cur.Queries-prev.Queries, cur.Assignments-prev.Assignments
	return []any{rate(cur.Assignments, prev.Assignments), rate(cur.Xacts, prev.Xacts), rate(cur.Queries, prev.Queries),
		rate(cur.Received, prev.Received), rate(cur.Sent, prev.Sent),
		per(cur.XactTime-prev.XactTime, dx), per(cur.QueryTime-prev.QueryTime, dq), per(cur.WaitTime-prev.WaitTime, da),
		rate(cur.ClientParses, prev.ClientParses), rate(cur.ServerParses, prev.ServerParses), rate(cur.Binds, prev.Binds)}
}

var clientColumns = []any{"type", text, "user", text, "database", text, "replication", text, "state", text,
	"addr", text, "port", int4, "local_addr", text, "local_port", int4, "connect_time", text, "request_time", text,
	"wait", int4, "wait_us", int4, "close_needed", int4, "ptr", text, "link", text, "remote_pid", int4, "tls", text,
	"application_name", text, "prepared_statements", int4, "id", int4}

// timeText is pgbouncer's time format; a zero time is now, as there.
func timeText(t, now time.Time) string {
	if t.IsZero() {
		t = now
	}
	return t.UTC().Format("2006-01-02 15:04:05 MST")
}

func hostPort(a net.Addr) (string, int) {
	if a == nil {
		return "", 0
	}
	h, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func clientPtr(id uint64) string { return fmt.Sprintf("%#x", id) }
func serverPtr(pid uint32) string {
	if pid == 0 {
		return ""
	}
	return fmt.Sprintf("%#x", 1<<40|uint64(pid))
}

func (c *Console) showClients() proxy.Result {
	t := newTable(clientColumns...)
	now := time.Now()
	for _, cl := range c.s.deps.Proxy.Clients() {
		addr, port := hostPort(cl.Addr)
		laddr, lport := hostPort(cl.Local)
		t.row("C", cl.User, cl.Database, cl.Replication, cl.State, addr, port, laddr, lport,
			timeText(cl.Connected, now), timeText(cl.LastRequest, now),
			int64(cl.Waiting/time.Second), int64((cl.Waiting%time.Second)/time.Microsecond), 0,
			clientPtr(cl.ID), serverPtr(cl.ServerPID), 0, cl.TLS, cl.AppName, cl.Prepared, cl.ID)
	}
	return t.r
}

func (c *Console) showServers() proxy.Result {
	t := newTable(clientColumns...)
	now := time.Now()
	for _, sv := range c.s.deps.Proxy.Servers() {
		addr, port := hostPort(sv.Addr)
		laddr, lport := hostPort(sv.Local)
		link := ""
		if sv.State == "active" && sv.Client != 0 {
			link = clientPtr(sv.Client)
		}
		t.row("S", sv.User, sv.Database, "none", sv.State, addr, port, laddr, lport,
			timeText(sv.Connected, now), timeText(sv.LastUsed, now), 0, 0, 0,
			serverPtr(sv.PID), link, sv.PID, sv.TLS, sv.AppName, sv.Prepared, sv.PID)
	}
	return t.r
}

// dbRow is a SHOW DATABASES row.
type dbRow struct {
	name, database   string
	l                proxy.ListenerInfo
	servers, clients int
	paused           bool
}

func (c *Console) databases() []dbRow {
	p := c.s.deps.Proxy
	var rows []dbRow
	idx := map[string]int{}
	add := func(l proxy.ListenerInfo, name, db string) *dbRow {
		if i, ok := idx[name]; ok {
			return &rows[i]
		}
		idx[name] = len(rows)
		r := dbRow{name: name, database: db, l: l}
		if l.Mode != proxy.Relay {
			r.paused = p.Paused(proxy.Target{Listener: l.Name, Database: db})
		}
		rows = append(rows, r)
		return &rows[len(rows)-1]
	}
	lis := p.Listeners()
	byName := map[string]proxy.ListenerInfo{}
	for _, l := range lis {
		byName[l.Name] = l
		if l.Mode == proxy.Relay {
			add(l, l.Name, "")
			continue
		}
		for _, t := range l.Totals {
			add(l, t.Database, strings.TrimPrefix(t.Database, l.Name+"/"))
		}
		for _, ps := range l.Pools {
			r := add(l, l.Name+"/"+ps.ID.Database, ps.ID.Database)
			r.servers += ps.Active + ps.Idle + ps.Login + ps.Closing
		}
	}
	for _, cl := range p.Clients() {
		l, ok := byName[cl.Listener]
		if !ok || proxy.IsConsole(cl.Database) {
			continue
		}
		r := add(l, cl.Database, strings.TrimPrefix(cl.Database, l.Name+"/"))
		r.clients++
		if l.Mode == proxy.Relay && cl.ServerPID != 0 {
			r.servers++
		}
	}
	slices.SortFunc(rows, func(a, b dbRow) int { return strings.Compare(a.name, b.name) })
	return rows
}

// target is where a listener's sessions go now: host and port, or a
// comma-separated host list for replicas.
func target(snap *topology.Snapshot, role router.Role) (host, port any) {
	var addrs []string
	for _, m := range snap.Members {
		switch {
		case !m.Healthy:
		case m.Role == topology.RolePrimary && (role == router.Primary || role == router.Any):
			addrs = append(addrs, m.Addr)
		case m.Role == topology.RoleReplica && role != router.Primary && !m.NoLoadBalance:
			addrs = append(addrs, m.Addr)
		}
	}
	switch len(addrs) {
	case 0:
		return nil, 0
	case 1:
		h, p, _ := net.SplitHostPort(addrs[0])
		n, _ := strconv.Atoi(p)
		return h, n
	}
	slices.Sort(addrs)
	return strings.Join(addrs, ","), 0
}

func (c *Console) showDatabases() proxy.Result {
	t := newTable("name", text, "host", text, "port", int4, "database", text, "force_user", text, "pool_size", int4,
		"min_pool_size", int4, "reserve_pool_size", int4, "server_lifetime", int4, "pool_mode", text,
		"load_balance_hosts", text, "max_connections", int4, "current_connections", int4,
		"max_client_connections", int4, "current_client_connections", int4, "paused", int4, "disabled", int4)
	snap := c.s.deps.Router.Snapshot()
	for _, r := range c.databases() {
		host, port := target(snap, r.l.Role)
		var db any = r.database
		if r.database == "" {
			db = nil
		}
		po := r.l.Pool
		if r.l.Mode == proxy.Relay { // no pool: a server per client
			po = proxy.PoolOptions{}
		}
		var lb any
		if h, ok := host.(string); ok && strings.Contains(h, ",") {
			lb = "round-robin"
		}
		t.row(r.name, host, port, db, nil, po.Size, po.MinSize, po.ReserveSize, int64(po.Lifetime/time.Second),
			r.l.Mode.String(), lb, po.MaxDBConns, r.servers, 0, r.clients, r.paused, 0)
	}
	t.row("pgbouncer", nil, listenPort(c), "pgbouncer", "pgbouncer", 2, 0, 0, 0, "statement", nil, 0, 0, 0,
		len(slices.DeleteFunc(c.s.deps.Proxy.Clients(), func(cl proxy.ClientInfo) bool { return !proxy.IsConsole(cl.Database) })), 0, 0)
	return t.r
}

// listenPort is the first listener's port, as pgbouncer's listen_port.
func listenPort(c *Console) int {
	for _, l := range c.s.deps.Proxy.Listeners() {
		_, p, _ := net.SplitHostPort(l.Address)
		n, _ := strconv.Atoi(p)
		return n
	}
	return 0
}

func (c *Console) showLists() proxy.Result {
	t := newTable("list", text, "items", int4)
	p := c.s.deps.Proxy
	users := map[string]bool{}
	clients, starting := 0, int64(0)
	for _, cl := range p.Clients() {
		users[cl.User] = true
		clients++
	}
	for _, l := range p.Listeners() {
		starting += l.Counters.Starting.Load()
	}
	_, pools := c.pools()
	for _, kv := range []struct {
		k string
		v any
	}{{"databases", len(c.databases()) + 1}, {"users", len(users)}, {"peers", 0}, {"pools", len(pools)},
		{"peer_pools", 0}, {"free_clients", 0}, {"used_clients", clients}, {"login_clients", starting},
		{"free_servers", 0}, {"used_servers", len(p.Servers())}, {"dns_names", 0}, {"dns_zones", 0},
		{"dns_queries", 0}, {"dns_pending", 0}} {
		t.row(kv.k, kv.v)
	}
	return t.r
}

func (c *Console) showConfig() proxy.Result {
	t := newTable("key", text, "value", text, "default", text, "changeable", text)
	if c.s.deps.Config != nil {
		for _, r := range c.s.deps.Config() {
			t.row(r[0], r[1], r[2], r[3])
		}
	}
	return t.r
}

func (c *Console) showTopology() proxy.Result {
	t := newTable("member", text, "role", text, "healthy", text, "state", text, "address", text, "timeline", int8,
		"lag_bytes", int8, "tags", text, "in_role_since", text, "revision", int8, "source", text, "discovery", text,
		"age_seconds", numeric)
	st := c.s.status()
	for _, m := range st.Members {
		var since any
		if m.Since != nil {
			since = m.Since.UTC().Format(time.RFC3339)
		}
		var lag any = m.Lag
		if m.Lag < 0 {
			lag = nil
		}
		healthy := "yes"
		if !m.Healthy {
			healthy = "no"
		}
		t.row(m.Name, m.Role.String(), healthy, m.State, m.Addr, m.Timeline, lag, m.Tags, since, st.Discovery.Revision,
			st.Discovery.Source, string(st.Discovery.State), fmt.Sprintf("%.3f", max(0, st.Discovery.LastChangeAge)))
	}
	return t.r
}

func (c *Console) showListeners() proxy.Result {
	t := newTable("name", text, "address", text, "role", text, "pool_mode", text, "paused", int4,
		"clients_active", int8, "clients_waiting", int8, "sessions", int8, "bytes_in", int8, "bytes_out", int8,
		"errors", int8, "refused", int8, "killed", int8)
	for _, l := range c.s.status().Listeners {
		t.row(l.Name, l.Address, l.Role, l.PoolMode, l.Paused, l.ClientsActive, l.ClientsWaiting, l.Sessions,
			l.BytesIn, l.BytesOut, l.Errors, l.Refused, l.Killed)
	}
	return t.r
}
