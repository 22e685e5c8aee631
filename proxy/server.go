// Package proxy accepts PostgreSQL clients on the configured listeners and
// relays each session to the member the router chooses.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy/pooler"
	"github.com/switchyard-proxy/switchyard/router"
)

// ClientTLS is the client-side TLS policy.
type ClientTLS uint8

// Client TLS modes; the zero value is allow.
const (
	ClientTLSAllow   ClientTLS = iota // TLS for clients that ask for it
	ClientTLSDisable                  // 'N' to every SSLRequest
	ClientTLSRequire                  // plaintext clients get 28000
)

// Router is what the proxy needs from routing: the members to try for a
// new session on a listener, and whether a member still serves a session
// routed to it.
type Router interface {
	Candidates(ctx context.Context, listener string) ([]topology.Member, error)
	Check(b router.Binding) *router.Loss
}

// Listener is one client-facing port.
type Listener struct {
	Name    string
	Address string
	Role    router.Role // for messages and recovery checks
	Mode    Mode        // relay, or a pool mode
	Pool    PoolOptions // for pooled listeners
}

// Mode is how a listener serves its clients.
type Mode uint8

const (
	Relay           Mode = iota // a server connection per client, authentication passed through
	PoolSession                 // a pooled server for the client's whole life
	PoolTransaction             // a pooled server per transaction
)

func (m Mode) String() string { return [...]string{"none", "session", "transaction"}[m] }

// PoolOptions configure a pooled listener: its pools and the client
// timeouts pgbouncer has.
type PoolOptions struct {
	pool.Options
	ClientIdleTimeout      time.Duration // a client with no server attached, silent this long, is closed (57P05)
	IdleTransactionTimeout time.Duration // a client idle inside a transaction this long is closed (25P03)
	// MaxPrepared bounds the prepared statements kept on each server in
	// transaction mode (max_prepared_statements); 0 turns tracking off.
	MaxPrepared int
}

// Options configure a Server. Router, Registry and Dialer are required.
type Options struct {
	Listeners []Listener
	Router    Router
	Registry  *Registry
	Dialer    *pool.Dialer
	TLSConfig *tls.Config // nil: clients are answered 'N' to SSLRequest
	ClientTLS ClientTLS

	// StartupTimeout bounds the time from accept to the StartupMessage
	// (SSL negotiation included); a client that takes longer is closed
	// without a reply, as PostgreSQL does.
	StartupTimeout time.Duration
	// LoginTimeout bounds the time from accept to ReadyForQuery: waiting
	// for a leader, connecting and authenticating. Past it the client gets
	// 57014.
	LoginTimeout    time.Duration
	ShutdownTimeout time.Duration
	ConfirmWait     time.Duration // how long a new write session waits for a new primary to leave recovery
	ConfirmReplicas bool          // check every replica session's backend is in recovery (polling discovery)
	// MaxClients counts clients that have sent a StartupMessage; more get
	// 53300. MaxStartups bounds connections that have not yet; more are
	// closed at once. 0 means no limit.
	MaxClients  int
	MaxStartups int
	// Auth authenticates clients of pooled listeners; relay listeners
	// pass authentication through.
	Auth   Auth
	Logger *slog.Logger
	// Observe returns the observer of a listener's requests, waits,
	// errors and ends, for metrics; nil observes nothing.
	Observe func(listener string) Observer
	// Console serves clients that ask for database "pgbouncer" or
	// "switchyard"; nil refuses them like any unknown database.
	Console Console
}

// Server is the relay proxy.
type Server struct {
	opts      Options
	log       *slog.Logger
	tlsConfig *tls.Config
	registry  *Registry
	cancels   cancelMap
	clients   clientTable
	// statements are the prepared statements transaction-mode clients
	// share, proxy-wide.
	statements *pooler.Registry
	lns        atomic.Pointer[[]*listener] // copy on write: reloads add and remove

	lnMu     sync.Mutex // serialises changes of lns and the start of serving
	serving  *serving   // set by Serve; nil before and after
	stopping bool

	starting  atomic.Int64 // connections without a StartupMessage yet
	active    atomic.Int64 // clients counted against MaxClients
	nextID    atomic.Uint64
	sessions  sync.WaitGroup
	lastShout atomic.Int64 // unix nanos of the last "max_startups reached" warning

	// hard is the parent of every session context; cancelling it ends
	// all sessions with its cause.
	hard       context.Context
	hardCancel context.CancelCauseFunc
}

type listener struct {
	name  string
	role  router.Role
	mode  Mode
	ln    net.Listener
	stats *Counters
	pools *pool.Set                   // pooled listeners only
	popts atomic.Pointer[PoolOptions] // replaced by a reload
	obs   Observer
	// sessions counts the listener's sessions, so that a listener a
	// reload removed closes its pools once the last one has ended.
	sessions   sync.WaitGroup
	removed    atomic.Bool
	acceptDone chan struct{} // closed when its accept loop has returned
	// relayTotals are a relay listener's SHOW STATS row; dbTotals a
	// pooled listener's, by database.
	relayTotals Totals
	dbTotals    totalsTable
	// welcome caches each pool's server parameters, so that a client
	// logs in without waiting for a server.
	welcome welcomeCache
}

// New returns a Server; call Listen, then Serve.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LoginTimeout <= 0 {
		opts.LoginTimeout = 15 * time.Second
	}
	if opts.StartupTimeout <= 0 || opts.StartupTimeout > opts.LoginTimeout {
		opts.StartupTimeout = min(5*time.Second, opts.LoginTimeout)
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.Registry == nil {
		opts.Registry = NewRegistry()
	}
	s := &Server{opts: opts, log: opts.Logger, tlsConfig: opts.TLSConfig, registry: opts.Registry,
		statements: pooler.NewRegistry()}
	s.hard, s.hardCancel = context.WithCancelCause(context.Background())
	return s
}

// Listen binds every listener, or none.
func (s *Server) Listen() error {
	var ls []*listener
	for _, l := range s.opts.Listeners {
		nl, err := s.bind(l)
		if err != nil {
			for _, o := range ls {
				o.ln.Close()
			}
			return err
		}
		ls = append(ls, nl)
	}
	s.lns.Store(&ls)
	return nil
}

// bind opens one listener's socket and builds its pools.
func (s *Server) bind(l Listener) (*listener, error) {
	ln, err := listenConfig().Listen(context.Background(), "tcp", l.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.Name, err)
	}
	nl := &listener{name: l.Name, role: l.Role, mode: l.Mode, ln: ln, stats: &Counters{}, obs: nopObserver{},
		acceptDone: make(chan struct{})}
	nl.popts.Store(&l.Pool)
	if s.opts.Observe != nil {
		nl.obs = s.opts.Observe(l.Name)
	}
	if l.Mode != Relay {
		po := l.Pool.Options
		po.Logger = s.log.With("listener", l.Name)
		nl.pools = pool.NewSet(po, s.opener(nl))
	}
	return nl, nil
}

// all is every listener, those draining after a reload removed them too.
func (s *Server) all() []*listener {
	if p := s.lns.Load(); p != nil {
		return *p
	}
	return nil
}

// AddListener binds and serves a new listener (a reload added it).
func (s *Server) AddListener(l Listener) error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	for _, o := range s.all() {
		if o.name == l.Name {
			return fmt.Errorf("listener %q exists already", l.Name)
		}
	}
	if s.stopping {
		return errors.New("shutting down")
	}
	nl, err := s.bind(l)
	if err != nil {
		return err
	}
	ls := append(slices.Clone(s.all()), nl)
	s.lns.Store(&ls)
	if s.serving != nil {
		s.serving.start(s, nl)
	}
	return nil
}

// RemoveListener stops accepting on a listener (a reload removed it). Its
// sessions go on until they end; then its pools close and it is gone.
func (s *Server) RemoveListener(name string) error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	var l *listener
	for _, o := range s.all() {
		if o.name == name && !o.removed.Load() {
			l = o
		}
	}
	if l == nil {
		return fmt.Errorf("no listener %q", name)
	}
	l.removed.Store(true)
	l.ln.Close()
	if s.serving == nil {
		s.forget(l)
		return nil
	}
	s.serving.background.Go(func() {
		<-l.acceptDone // no session starts after this
		l.sessions.Wait()
		if l.pools != nil {
			l.pools.Close()
		}
		s.lnMu.Lock()
		s.forget(l)
		s.lnMu.Unlock()
		s.log.Info("removed listener drained", "listener", l.name)
	})
	return nil
}

// forget drops l from the list (under lnMu).
func (s *Server) forget(l *listener) {
	ls := slices.DeleteFunc(slices.Clone(s.all()), func(o *listener) bool { return o == l })
	s.lns.Store(&ls)
}

// SetPoolOptions applies a reload's pool settings to a pooled listener.
func (s *Server) SetPoolOptions(name string, o PoolOptions) error {
	for _, l := range s.all() {
		if l.name == name && !l.removed.Load() {
			if l.pools == nil {
				return fmt.Errorf("listener %q relays", name)
			}
			l.popts.Store(&o)
			l.pools.SetOptions(o.Options)
			return nil
		}
	}
	return fmt.Errorf("no listener %q", name)
}

// serving is what Serve runs for each listener: its accept loop and its
// pools' upkeep.
type serving struct {
	ctx, maint context.Context
	accepting  sync.WaitGroup
	upkeep     sync.WaitGroup
	background sync.WaitGroup // removed listeners draining
}

func (sv *serving) start(s *Server, l *listener) {
	sv.accepting.Go(func() {
		defer close(l.acceptDone)
		s.accept(sv.ctx, l)
	})
	if l.pools != nil {
		sv.upkeep.Go(func() { l.pools.Run(sv.maint) })
	}
	s.log.Info("listening", "listener", l.name, "address", l.ln.Addr().String(), "role", l.role, "pool_mode", l.mode)
}

// Addr returns the bound address of the named listener.
func (s *Server) Addr(name string) net.Addr {
	for _, l := range s.all() {
		if l.name == name {
			return l.ln.Addr()
		}
	}
	return nil
}

// ConfirmReplicas makes every new replica session check in-band that its
// node is still in recovery (for discovery that polls). Call it before
// Serve.
func (s *Server) ConfirmReplicas(on bool) { s.opts.ConfirmReplicas = on }

// Registry is the set of live sessions bound to members.
func (s *Server) Registry() *Registry { return s.registry }

// Close releases the listeners. Serve calls it on shutdown; a caller that
// gives up between Listen and Serve calls it itself.
func (s *Server) Close() {
	for _, l := range s.all() {
		l.ln.Close()
	}
}

// Serve accepts clients until ctx is done, then shuts down: it stops
// accepting, lets sessions finish for up to ShutdownTimeout, then ends the
// rest with 57P01 and returns once every session is gone.
func (s *Server) Serve(ctx context.Context) error {
	maint, stopMaint := context.WithCancel(context.Background())
	sv := &serving{ctx: ctx, maint: maint}
	s.lnMu.Lock()
	s.serving = sv
	for _, l := range s.all() {
		sv.start(s, l)
	}
	s.lnMu.Unlock()
	defer func() {
		stopMaint()
		sv.upkeep.Wait()
		for _, l := range s.all() {
			if l.pools != nil {
				l.pools.Close()
			}
		}
		sv.background.Wait()
		s.lnMu.Lock()
		s.serving = nil
		s.lnMu.Unlock()
	}()
	<-ctx.Done()
	s.lnMu.Lock()
	s.stopping = true
	s.lnMu.Unlock()
	s.Close()
	sv.accepting.Wait()
	// Console clients hold no transaction: they need not hold up the drain.
	s.clients.each(func(sess *session) {
		if sess.console {
			sess.cancel(shutdownCause)
		}
	})

	s.log.Info("shutting down", "sessions", s.active.Load(), "shutdown_timeout", s.opts.ShutdownTimeout)
	drained := make(chan struct{})
	go func() { s.sessions.Wait(); close(drained) }()
	timer := time.NewTimer(s.opts.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
		s.log.Info("shutdown timeout reached, ending sessions", "sessions", s.active.Load())
		s.hardCancel(shutdownCause)
		<-drained
	}
	s.hardCancel(context.Canceled)
	return nil
}

// accept runs one listener's accept loop. Temporary errors (EMFILE and the
// like) back off instead of ending the loop: running out of descriptors
// refuses new clients and never touches live ones.
func (s *Server) accept(ctx context.Context, l *listener) {
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if backoff == time.Second || backoff == 5*time.Millisecond {
				s.log.Warn("accept failed; backing off", "listener", l.name, "err", err, "backoff", backoff)
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
		s.startSession(l, conn)
	}
}

func (s *Server) startSession(l *listener, conn net.Conn) {
	if n := s.starting.Add(1); s.opts.MaxStartups > 0 && n > int64(s.opts.MaxStartups) {
		s.starting.Add(-1)
		l.stats.Refused.Add(1)
		conn.Close()
		s.shout("limits.max_startups reached: closing new connections until clients send their startup packets",
			"listener", l.name, "max_startups", s.opts.MaxStartups)
		return
	}
	l.stats.Starting.Add(1)
	ctx, cancel := context.WithCancelCause(s.hard)
	sess := &session{
		srv: s, id: s.nextID.Add(1), ln: l, start: time.Now(), root: ctx, cancel: cancel,
		client: conn, cr: newClientReader(conn), cw: clientWriter{conn: conn},
		totals: &l.relayTotals,
	}
	s.sessions.Add(1)
	l.sessions.Add(1)
	go func() {
		defer s.sessions.Done()
		defer l.sessions.Done()
		defer cancel(nil)
		sess.serve(ctx)
	}()
}

// admit counts a session that has sent its StartupMessage against
// MaxClients, and refuses it with 53300 over the limit.
func (s *Server) admit(sess *session) error {
	s.starting.Add(-1)
	sess.ln.stats.Starting.Add(-1)
	sess.admitted = true
	s.clients.add(sess)
	sess.ln.stats.Active.Add(1)
	if n := s.active.Add(1); s.opts.MaxClients > 0 && n > int64(s.opts.MaxClients) {
		sess.ln.stats.Refused.Add(1)
		return onClient(newClientError(codeTooManyConnections,
			"sorry, too many clients already (limits.max_clients = %d)", s.opts.MaxClients))
	}
	return nil
}

// release undoes startSession's and admit's counting.
func (s *Server) release(sess *session) {
	if sess.admitted {
		s.clients.remove(sess)
		s.active.Add(-1)
		sess.ln.stats.Active.Add(-1)
		return
	}
	s.starting.Add(-1)
	sess.ln.stats.Starting.Add(-1)
}

// shout logs a warning at most once a second.
func (s *Server) shout(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastShout.Load()
	if now-last < int64(time.Second) || !s.lastShout.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn(msg, args...)
}

// Stats returns the live counters of the named listener, nil if there is
// none.
func (s *Server) Stats(listener string) *Counters {
	for _, l := range s.all() {
		if l.name == listener {
			return l.stats
		}
	}
	return nil
}
