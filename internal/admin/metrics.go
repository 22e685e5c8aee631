package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// metrics are Switchyard's Prometheus metrics, on a registry of its own:
// histograms and counters the data path and the applier feed as things
// happen, and gauges and counters read from the live components at
// scrape time (collect). Labels are bounded: listener, member, database,
// user, state, reason, SQLSTATE class; never a client address or query.
type metrics struct {
	s *Server

	query, xact, wait *prometheus.HistogramVec
	errors, ended     *prometheus.CounterVec
	roleChanges       *prometheus.CounterVec
	snapshots         prometheus.Counter
	leaderGap         prometheus.Histogram
	sessionsEnded     *prometheus.CounterVec // by the applier, on role changes
}

const ns = "switchyard"

func newMetrics(s *Server) *metrics {
	durations := prometheus.ExponentialBuckets(0.0005, 4, 9) // 0.5 ms … 33 s
	m := &metrics{
		s: s,
		query: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "client",
			Name: "query_duration_seconds", Help: "Requests (up to each ReadyForQuery) by listener, from the client's first message.",
			Buckets: durations}, []string{"listener"}),
		xact: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "client",
			Name: "transaction_duration_seconds", Help: "Transactions (up to an idle ReadyForQuery) by listener.",
			Buckets: durations}, []string{"listener"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "pool",
			Name: "wait_duration_seconds", Help: "Time pooled clients waited for a server connection.",
			Buckets: durations}, []string{"listener"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "client",
			Name: "errors_total", Help: "ErrorResponses sent to clients, by SQLSTATE class (\"\" where a relayed error is not read)."},
			[]string{"listener", "class"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "client",
			Name: "sessions_ended_total", Help: "Client sessions ended, by reason."}, []string{"listener", "reason"}),
		roleChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "topology",
			Name: "role_changes_total", Help: "Members that took a new role (primary, replica, unknown)."}, []string{"role"}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "discovery",
			Name: "events_total", Help: "Topology changes discovery published."}),
		leaderGap: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "topology",
			Name: "leader_gap_duration_seconds", Help: "Time from losing a primary to knowing the next one.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "topology",
			Name: "sessions_ended_total", Help: "Sessions Switchyard ended because their member lost its role."}, []string{"member"}),
	}
	s.reg.MustRegister(m.query, m.xact, m.wait, m.errors, m.ended, m.roleChanges, m.snapshots, m.leaderGap,
		m.sessionsEnded, &collector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Observe returns the data path's observer for a listener.
func (s *Server) Observe(listener string) proxy.Observer {
	m := s.metrics
	return &observer{listener: listener, m: m, query: m.query.WithLabelValues(listener),
		xact: m.xact.WithLabelValues(listener), wait: m.wait.WithLabelValues(listener)}
}

type observer struct {
	listener          string
	m                 *metrics
	query, xact, wait prometheus.Observer
}

func (o *observer) Query(d time.Duration) { o.query.Observe(d.Seconds()) }
func (o *observer) Xact(d time.Duration)  { o.xact.Observe(d.Seconds()) }
func (o *observer) Wait(d time.Duration)  { o.wait.Observe(d.Seconds()) }
func (o *observer) Error(class string)    { o.m.errors.WithLabelValues(o.listener, class).Inc() }
func (o *observer) Ended(r proxy.EndReason) {
	o.m.ended.WithLabelValues(o.listener, string(r)).Inc()
}

// collector reads the live components at scrape time.
type collector struct{ s *Server }

var (
	descClients = prometheus.NewDesc(ns+"_client_connections", "Client connections by state: starting (no startup packet yet), active (logged in or logging in), waiting (for a server).",
		[]string{"listener", "state"}, nil)
	descSessions = prometheus.NewDesc(ns+"_client_sessions_total", "Client sessions that logged in.", []string{"listener"}, nil)
	descRefused  = prometheus.NewDesc(ns+"_client_refused_total", "Connections refused by limits.max_startups or limits.max_clients.", []string{"listener"}, nil)
	descBytesIn  = prometheus.NewDesc(ns+"_client_received_bytes_total", "Bytes received from clients.", []string{"listener"}, nil)
	descBytesOut = prometheus.NewDesc(ns+"_client_sent_bytes_total", "Bytes sent to clients.", []string{"listener"}, nil)
	descQueries  = prometheus.NewDesc(ns+"_client_queries_total", "Requests answered (ReadyForQuery), by SHOW STATS database.", []string{"listener", "database"}, nil)
	descXacts    = prometheus.NewDesc(ns+"_client_transactions_total", "Transactions ended, by SHOW STATS database.", []string{"listener", "database"}, nil)
	descServers  = prometheus.NewDesc(ns+"_server_connections", "Server connections by member and state (relay sessions' own count as active).",
		[]string{"listener", "member", "state"}, nil)
	descPoolConns = prometheus.NewDesc(ns+"_pool_server_connections", "A pool's server connections by state.",
		[]string{"listener", "member", "database", "user", "state"}, nil)
	descPoolWaiting = prometheus.NewDesc(ns+"_pool_waiting_clients", "Clients waiting for a server of the pool.",
		[]string{"listener", "member", "database", "user"}, nil)
	descPoolMaxWait = prometheus.NewDesc(ns+"_pool_max_wait_seconds", "How long the pool's oldest waiting client has waited.",
		[]string{"listener", "member", "database", "user"}, nil)
	descPoolOpened = prometheus.NewDesc(ns+"_pool_servers_opened_total", "Server connections the pool opened.",
		[]string{"listener", "member", "database", "user"}, nil)
	descPoolClosed = prometheus.NewDesc(ns+"_pool_servers_closed_total", "Server connections the pool closed.",
		[]string{"listener", "member", "database", "user"}, nil)
	descPaused       = prometheus.NewDesc(ns+"_pool_paused", "1 while the listener's pools are paused (PAUSE).", []string{"listener"}, nil)
	descMembers      = prometheus.NewDesc(ns+"_topology_members", "Cluster members by role and health.", []string{"role", "healthy"}, nil)
	descMemberLag    = prometheus.NewDesc(ns+"_topology_replica_lag_bytes", "Replica lag behind the leader, where discovery knows it.", []string{"member"}, nil)
	descPrimary      = prometheus.NewDesc(ns+"_topology_primary_known", "1 when a single healthy primary is known.", nil, nil)
	descRevision     = prometheus.NewDesc(ns+"_discovery_revision", "Revision of the topology last published.", nil, nil)
	descLastAnswer   = prometheus.NewDesc(ns+"_discovery_last_answer_age_seconds", "Seconds since the discovery source last answered (staleness); -1 before its first answer.", nil, nil)
	descState        = prometheus.NewDesc(ns+"_discovery_state", "1 for discovery's current state.", []string{"state"}, nil)
	descUp           = prometheus.NewDesc(ns+"_up", "1: Switchyard is serving.", []string{"version"}, nil)
	discoveryStates  = []discovery.State{discovery.StateStarting, discovery.StateFresh, discovery.StateStale, discovery.StateFailClosed}
	clientStateNames = []string{"starting", "active", "waiting"}
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClients, descSessions, descRefused, descBytesIn, descBytesOut, descQueries,
		descXacts, descServers, descPoolConns, descPoolWaiting, descPoolMaxWait, descPoolOpened, descPoolClosed, descPaused,
		descMembers, descMemberLag, descPrimary, descRevision, descLastAnswer, descState, descUp} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := c.s.deps
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}
	gauge(descUp, 1, d.Version)
	for _, l := range d.Proxy.Listeners() {
		k := l.Counters
		for i, v := range []int64{k.Starting.Load(), k.Active.Load(), k.Waiting.Load()} {
			gauge(descClients, float64(v), l.Name, clientStateNames[i])
		}
		counter(descSessions, float64(k.Sessions.Load()), l.Name)
		counter(descRefused, float64(k.Refused.Load()), l.Name)
		counter(descBytesIn, float64(k.BytesIn.Load()), l.Name)
		counter(descBytesOut, float64(k.BytesOut.Load()), l.Name)
		for _, t := range l.Totals {
			counter(descQueries, float64(t.Queries), l.Name, t.Database)
			counter(descXacts, float64(t.Xacts), l.Name, t.Database)
		}
		if l.Mode != proxy.Relay {
			paused := 0.0
			if l.Paused {
				paused = 1
			}
			gauge(descPaused, paused, l.Name)
		}
		byMember := map[string][4]int{}
		for _, p := range l.Pools {
			id := []string{l.Name, p.ID.Member, p.ID.Database, p.ID.User}
			for state, v := range map[string]int{"active": p.Active, "idle": p.Idle, "login": p.Login, "closing": p.Closing} {
				gauge(descPoolConns, float64(v), append(id, state)...)
			}
			gauge(descPoolWaiting, float64(p.Waiting), id...)
			gauge(descPoolMaxWait, p.MaxWait.Seconds(), id...)
			counter(descPoolOpened, float64(p.Opened), id...)
			counter(descPoolClosed, float64(p.Closed), id...)
			b := byMember[p.ID.Member]
			b[0], b[1], b[2], b[3] = b[0]+p.Active, b[1]+p.Idle, b[2]+p.Login, b[3]+p.Closing
			byMember[p.ID.Member] = b
		}
		for member, b := range byMember {
			for i, state := range []string{"active", "idle", "login", "closing"} {
				gauge(descServers, float64(b[i]), l.Name, member, state)
			}
		}
	}
	relay := map[[2]string]int{}
	for _, sv := range d.Proxy.Servers() {
		if sv.Client != 0 && sv.Listener != "" && sv.Member != "" && d.Proxy.IsRelay(sv.Listener) {
			relay[[2]string{sv.Listener, sv.Member}]++
		}
	}
	for k, n := range relay {
		gauge(descServers, float64(n), k[0], k[1], "active")
	}

	snap := d.Router.Snapshot()
	type rh struct {
		role    topology.Role
		healthy bool
	}
	counts := map[rh]int{}
	for _, m := range snap.Members {
		counts[rh{m.Role, m.Healthy}]++
		if m.Lag >= 0 && m.Role == topology.RoleReplica {
			gauge(descMemberLag, float64(m.Lag), m.Name)
		}
	}
	for _, role := range []topology.Role{topology.RolePrimary, topology.RoleReplica, topology.RoleUnknown} {
		for _, h := range []bool{true, false} {
			hv := "false"
			if h {
				hv = "true"
			}
			gauge(descMembers, float64(counts[rh{role, h}]), role.String(), hv)
		}
	}
	_, ok := snap.Primary()
	gauge(descPrimary, b2f(ok))
	ds := d.Discovery.Status()
	gauge(descRevision, float64(ds.Revision))
	gauge(descLastAnswer, age(time.Now(), ds.LastAnswer))
	for _, st := range discoveryStates {
		gauge(descState, b2f(ds.State == st), string(st))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
