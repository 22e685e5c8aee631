// Package admin is Switchyard's operator surface: the stats page, the
// same data as JSON (/api/status), Prometheus metrics, the health checks
// load balancers use, and the pgbouncer-compatible admin console. It
// reads the running proxy, router and discovery; it changes them only
// through their own methods (pause, resume, reconnect, kill, reload).
package admin

import (
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/events"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/router"
)

// Deps are what the operator surface reads and acts on.
type Deps struct {
	Version   string
	Started   time.Time
	Proxy     *proxy.Server
	Router    *router.Router
	Discovery interface{ Status() discovery.Status }
	Events    *events.Log
	// Config returns SHOW CONFIG's rows: key, value, default, changeable.
	Config func() [][4]string
	// Reload re-reads the configuration file (RELOAD, SIGHUP).
	Reload func() error
	// Shutdown stops Switchyard gracefully (SHUTDOWN).
	Shutdown func()
}

// Status is the whole picture the stats page renders, and /api/status
// serves.
type Status struct {
	Version   string           `json:"version"`
	Started   time.Time        `json:"started"`
	Now       time.Time        `json:"now"`
	Ready     bool             `json:"ready"`
	NotReady  string           `json:"not_ready,omitempty"` // why not
	Primary   string           `json:"primary"`             // "" when none is known
	Discovery DiscoveryStatus  `json:"discovery"`
	Members   []MemberStatus   `json:"members"`
	Listeners []ListenerStatus `json:"listeners"`
	Events    []events.Event   `json:"events"`
}

// DiscoveryStatus is discovery.Status with ages worked out.
type DiscoveryStatus struct {
	discovery.Status
	LastAnswerAge float64 `json:"last_answer_age_seconds"` // -1 if never
	LastChangeAge float64 `json:"last_change_age_seconds"` // -1 if never
}

// MemberStatus is one cluster member.
type MemberStatus struct {
	Name     string        `json:"name"`
	Addr     string        `json:"addr"`
	Role     topology.Role `json:"role"` // primary, replica, unknown
	Healthy  bool          `json:"healthy"`
	State    string        `json:"state"`
	Timeline int64         `json:"timeline"`
	Lag      int64         `json:"lag_bytes"` // -1 if unknown
	Tags     string        `json:"tags"`
	Sync     bool          `json:"sync"`
	Why      string        `json:"why,omitempty"`
	Since    *time.Time    `json:"role_since,omitempty"` // nil: held since Switchyard started
	Sessions int           `json:"sessions"`             // bound client sessions
	Pools    []PoolStatus  `json:"pools"`
}

// PoolStatus is one pool's server connections.
type PoolStatus struct {
	Listener string  `json:"listener"`
	Database string  `json:"database"`
	User     string  `json:"user"`
	Active   int     `json:"active"`
	Idle     int     `json:"idle"`
	Login    int     `json:"login"`
	Waiting  int     `json:"waiting"`
	MaxWait  float64 `json:"max_wait_seconds"`
}

// ListenerStatus is one client-facing port.
type ListenerStatus struct {
	Name           string  `json:"name"`
	Address        string  `json:"address"`
	Role           string  `json:"role"`
	PoolMode       string  `json:"pool_mode"`
	Paused         bool    `json:"paused"`
	ClientsActive  int64   `json:"clients_active"`
	ClientsWaiting int64   `json:"clients_waiting"`
	Starting       int64   `json:"starting"`
	Sessions       int64   `json:"sessions_total"`
	SessionRate    float64 `json:"sessions_per_second"`
	BytesIn        int64   `json:"bytes_in"`
	BytesOut       int64   `json:"bytes_out"`
	Errors         int64   `json:"errors"`
	Refused        int64   `json:"refused"`
	Killed         int64   `json:"killed"`
	Queries        int64   `json:"queries"`
	Transactions   int64   `json:"transactions"`
}

// rates turns the sessions counters into sessions per second, over the
// time since the previous sample at least rateWindow old.
type rates struct {
	mu   sync.Mutex
	prev map[string]sample
	cur  map[string]sample
}

type sample struct {
	at time.Time
	n  int64
}

const rateWindow = 5 * time.Second

func (r *rates) rate(name string, n int64, now time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		r.cur, r.prev = map[string]sample{}, map[string]sample{}
	}
	c, ok := r.cur[name]
	if !ok {
		r.cur[name] = sample{now, n}
		return 0
	}
	if now.Sub(c.at) >= rateWindow {
		r.prev[name], r.cur[name] = c, sample{now, n}
	}
	base := r.prev[name]
	if base.at.IsZero() {
		base = c
	}
	if d := now.Sub(base.at).Seconds(); d > 0 {
		return float64(n-base.n) / d
	}
	return 0
}

// status builds the picture from the live components.
func (s *Server) status() Status {
	now := time.Now()
	d := s.deps
	st := Status{Version: d.Version, Started: d.Started, Now: now}
	ds := d.Discovery.Status()
	st.Discovery = DiscoveryStatus{Status: ds, LastAnswerAge: age(now, ds.LastAnswer), LastChangeAge: age(now, ds.LastChange)}
	snap := d.Router.Snapshot()
	if p, ok := snap.Primary(); ok {
		st.Primary = p.Name
	}
	st.Ready, st.NotReady = ready(ds, st.Primary)

	lis := d.Proxy.Listeners()
	pools := map[string][]PoolStatus{}
	for _, l := range lis {
		for _, p := range l.Pools {
			pools[p.ID.Member] = append(pools[p.ID.Member], PoolStatus{Listener: l.Name, Database: p.ID.Database,
				User: p.ID.User, Active: p.Active, Idle: p.Idle, Login: p.Login, Waiting: p.Waiting, MaxWait: p.MaxWait.Seconds()})
		}
	}
	bound := d.Proxy.Registry().Counts()
	for _, m := range snap.Members {
		ms := MemberStatus{Name: m.Name, Addr: m.Addr, Role: m.Role, Healthy: m.Healthy, State: m.State,
			Timeline: m.Timeline, Lag: m.Lag, Tags: m.Tags, Sync: m.Sync, Why: m.Why, Sessions: bound[m.Name],
			Pools: pools[m.Name]}
		if !m.Since.IsZero() {
			since := m.Since
			ms.Since = &since
		}
		if ms.Pools == nil {
			ms.Pools = []PoolStatus{}
		}
		st.Members = append(st.Members, ms)
	}
	for _, l := range lis {
		c := l.Counters
		ls := ListenerStatus{Name: l.Name, Address: l.Address, Role: l.Role.String(), PoolMode: l.Mode.String(),
			Paused: l.Paused, ClientsActive: c.Active.Load(), ClientsWaiting: c.Waiting.Load(), Starting: c.Starting.Load(),
			Sessions: c.Sessions.Load(), BytesIn: c.BytesIn.Load(), BytesOut: c.BytesOut.Load(), Errors: c.Errors.Load(),
			Refused: c.Refused.Load(), Killed: c.Killed.Load()}
		for _, t := range l.Totals {
			ls.Queries += t.Queries
			ls.Transactions += t.Xacts
		}
		ls.SessionRate = s.rates.rate(l.Name, ls.Sessions, now)
		st.Listeners = append(st.Listeners, ls)
	}
	st.Events = d.Events.List()
	if st.Events == nil {
		st.Events = []events.Event{}
	}
	return st
}

func age(now, t time.Time) float64 {
	if t.IsZero() {
		return -1
	}
	return now.Sub(t).Seconds()
}

// ready is /ready's answer: discovery fresh and a primary known.
func ready(ds discovery.Status, primary string) (bool, string) {
	switch {
	case ds.State != discovery.StateFresh:
		return false, "discovery is " + string(ds.State) + " (" + ds.Source + ")"
	case primary == "":
		return false, "no primary is known"
	}
	return true, ""
}
