package proxy

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
)

// clientTable is every client that has sent its StartupMessage, for the
// console's SHOW CLIENTS and KILL.
type clientTable struct {
	mu sync.Mutex
	m  map[uint64]*session
}

func (t *clientTable) add(s *session) {
	t.mu.Lock()
	if t.m == nil {
		t.m = map[uint64]*session{}
	}
	t.m[s.id] = s
	t.mu.Unlock()
}

func (t *clientTable) remove(s *session) {
	t.mu.Lock()
	delete(t.m, s.id)
	t.mu.Unlock()
}

// each calls f for every client, outside the table's lock.
func (t *clientTable) each(f func(*session)) {
	t.mu.Lock()
	all := make([]*session, 0, len(t.m))
	for _, s := range t.m {
		all = append(all, s)
	}
	t.mu.Unlock()
	for _, s := range all {
		f(s)
	}
}

// ClientInfo is one client, as SHOW CLIENTS shows it.
type ClientInfo struct {
	ID          uint64
	Listener    string
	Database    string // as SHOW DATABASES names it ("rw", "rw/app", "pgbouncer")
	User        string
	AppName     string
	Replication string // none, physical, logical
	State       string // active, waiting
	Addr, Local net.Addr
	Connected   time.Time
	LastRequest time.Time // zero if none yet
	Waiting     time.Duration
	TLS         string // "TLSv1.3/TLS_AES_128_GCM_SHA256", "" without
	ServerPID   uint32 // of the server attached now, 0 if none
	ServerLocal net.Addr
	Prepared    int // prepared statements the client has (transaction mode)
}

// ServerInfo is one server connection, as SHOW SERVERS shows it.
type ServerInfo struct {
	Listener    string
	Database    string // as SHOW DATABASES names it
	User        string
	Member      string
	State       string // active, idle
	Addr, Local net.Addr
	Connected   time.Time
	LastUsed    time.Time
	PID         uint32
	TLS         string
	AppName     string
	Client      uint64 // the session using it, 0 if idle
	Prepared    int
}

// database is the database the client asked for.
func (s *session) database() string { return s.startup.params["database"] }

// rowName names the SHOW DATABASES row of database db on listener l.
func rowName(l *listener, db string) string {
	if l.mode == Relay {
		return l.name
	}
	return l.name + "/" + db
}

// Clients lists every client that has sent its StartupMessage.
func (s *Server) Clients() []ClientInfo {
	var out []ClientInfo
	now := time.Now()
	s.clients.each(func(sess *session) { out = append(out, sess.info(now)) })
	slices.SortFunc(out, func(a, b ClientInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (s *session) info(now time.Time) ClientInfo {
	p := s.startup.params
	ci := ClientInfo{ID: s.id, Listener: s.ln.name, User: p["user"], AppName: p["application_name"],
		Replication: "none", State: "active", Connected: s.start}
	ci.Database = rowName(s.ln, p["database"])
	if s.console {
		ci.Database = p["database"]
	}
	switch r := p["replication"]; r {
	case "database":
		ci.Replication = "logical"
	case "true", "on", "yes", "1":
		ci.Replication = "physical"
	}
	if t := s.timing.last.Load(); t != 0 {
		ci.LastRequest = time.Unix(0, t)
	}
	if w := s.waitingFrom.Load(); w != 0 {
		ci.State, ci.Waiting = "waiting", now.Sub(time.Unix(0, w))
	}
	s.mu.Lock()
	client, server := s.client, s.server
	s.mu.Unlock()
	ci.Addr, ci.Local = client.RemoteAddr(), client.LocalAddr()
	ci.TLS = tlsText(client)
	if server != nil {
		ci.ServerPID, ci.ServerLocal = server.Key.PID, server.LocalAddr()
	}
	if pc := s.pooled.Load(); pc != nil {
		pc.mu.Lock()
		if pc.m != nil {
			ci.Prepared = pc.m.Statements()
		}
		pc.mu.Unlock()
	}
	return ci
}

// tlsText describes a TLS connection as pgbouncer does, "" for plain.
func tlsText(c net.Conn) string {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	return fmt.Sprintf("%s/%s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
}

// Servers lists every server connection: the pools' and the relay
// sessions' own.
func (s *Server) Servers() []ServerInfo {
	var out []ServerInfo
	for _, l := range s.all() {
		if l.pools == nil {
			continue
		}
		for _, sv := range l.pools.Servers() {
			si := serverInfo(l, sv.ID.Database, sv.ID.User, sv.Conn)
			si.Member, si.Connected, si.LastUsed, si.Client = sv.ID.Member, sv.Created, sv.LastUsed, sv.Owner
			if sv.Active {
				si.State = "active"
			}
			if st, ok := sv.Statements.(interface{ Len() int }); ok && st != nil {
				si.Prepared = st.Len()
			}
			out = append(out, si)
		}
	}
	s.clients.each(func(sess *session) {
		if sess.ln.mode != Relay || sess.console {
			return
		}
		sess.mu.Lock()
		server := sess.server
		sess.mu.Unlock()
		if server == nil {
			return
		}
		p := sess.startup.params
		si := serverInfo(sess.ln, p["database"], p["user"], server)
		si.State, si.Member, si.Connected, si.Client, si.AppName = "active", server.Member, sess.start, sess.id, p["application_name"]
		if t := sess.timing.last.Load(); t != 0 {
			si.LastUsed = time.Unix(0, t)
		}
		out = append(out, si)
	})
	return out
}

func serverInfo(l *listener, db, user string, c *pool.Conn) ServerInfo {
	return ServerInfo{Listener: l.name, Database: rowName(l, db), User: user, State: "idle",
		Addr: c.RemoteAddr(), Local: c.LocalAddr(), PID: c.Key.PID, TLS: tlsText(c.Conn)}
}
