// Package proxy accepts PostgreSQL clients on the configured listeners and
// relays each session to the backend the router chooses.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/router"
)

// Client TLS modes.
const (
	ClientTLSDisable = "disable"
	ClientTLSAllow   = "allow"
	ClientTLSRequire = "require"
)

// Router is what the proxy needs from routing: the backends to try for a
// new session on a listener, and whether a registered session may keep
// its backend.
type Router interface {
	Candidates(ctx context.Context, listener string) ([]router.Member, error)
	Check(s router.Session) *router.KillCause
}

// Listener is one client-facing port.
type Listener struct {
	Name    string
	Address string
	Role    string // for messages and the session registry
}

// Options configure a Server. Router, Registry and Dialer are required.
type Options struct {
	Listeners       []Listener
	Router          Router
	Registry        *router.Registry
	Dialer          *pool.Dialer
	TLSConfig       *tls.Config // nil: clients are answered 'N' to SSLRequest
	ClientTLS       string      // ClientTLSDisable | ClientTLSAllow | ClientTLSRequire
	LoginTimeout    time.Duration
	ShutdownTimeout time.Duration
	ConfirmWait     time.Duration // how long a new write session waits for a new primary to leave recovery
	ConfirmReplicas bool          // check every replica session's backend is in recovery (polling discovery)
	MaxClients      int
	Logger          *slog.Logger
}

// Server is the relay proxy.
type Server struct {
	opts      Options
	log       *slog.Logger
	tlsConfig *tls.Config
	cancels   cancelMap
	listeners []*listener

	clients  atomic.Int64
	nextID   atomic.Uint64
	sessions sync.WaitGroup

	// hard is the parent of every session context; cancelling it ends
	// all sessions with its cause.
	hard       context.Context
	hardCancel context.CancelCauseFunc
}

type listener struct {
	name, role string
	ln         net.Listener
}

// New returns a Server; call Listen, then Serve.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LoginTimeout <= 0 {
		opts.LoginTimeout = 15 * time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.ClientTLS == "" {
		opts.ClientTLS = ClientTLSAllow
	}
	s := &Server{opts: opts, log: opts.Logger, tlsConfig: opts.TLSConfig}
	s.hard, s.hardCancel = context.WithCancelCause(context.Background())
	return s
}

// Listen binds every listener, or none.
func (s *Server) Listen() error {
	for _, l := range s.opts.Listeners {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			s.Close()
			return fmt.Errorf("listener %q: %w", l.Name, err)
		}
		s.listeners = append(s.listeners, &listener{name: l.Name, role: l.Role, ln: ln})
	}
	return nil
}

// Addr returns the bound address of the named listener.
func (s *Server) Addr(name string) net.Addr {
	for _, l := range s.listeners {
		if l.name == name {
			return l.ln.Addr()
		}
	}
	return nil
}

// Close releases the listeners. Serve calls it on shutdown; a caller that
// gives up between Listen and Serve calls it itself.
func (s *Server) Close() {
	for _, l := range s.listeners {
		l.ln.Close()
	}
}

// Serve accepts clients until ctx is done, then shuts down: it stops
// accepting, lets sessions finish for up to ShutdownTimeout, then ends the
// rest with 57P01 and returns once every session is gone.
func (s *Server) Serve(ctx context.Context) error {
	var accepting sync.WaitGroup
	for _, l := range s.listeners {
		accepting.Add(1)
		go func() {
			defer accepting.Done()
			s.accept(ctx, l)
		}()
		s.log.Info("listening", "listener", l.name, "address", l.ln.Addr().String(), "role", l.role)
	}
	<-ctx.Done()
	s.Close()
	accepting.Wait()

	n := s.clients.Load()
	s.log.Info("shutting down", "sessions", n, "shutdown_timeout", s.opts.ShutdownTimeout)
	drained := make(chan struct{})
	go func() { s.sessions.Wait(); close(drained) }()
	timer := time.NewTimer(s.opts.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
		s.log.Info("shutdown timeout reached, ending sessions", "sessions", s.clients.Load())
		s.hardCancel(&router.KillCause{SQLState: codeAdminShutdown,
			Message: "terminating connection because Switchyard is shutting down"})
		<-drained
	}
	s.hardCancel(context.Canceled)
	return nil
}

// accept runs one listener's accept loop. Temporary errors (EMFILE and the
// like) back off instead of ending the loop.
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
	overLimit := s.clients.Add(1) > int64(s.opts.MaxClients) && s.opts.MaxClients > 0
	ctx, cancel := context.WithCancelCause(s.hard)
	sess := &session{
		srv: s, id: s.nextID.Add(1), ln: l, start: time.Now(), cancel: cancel,
		client: conn, cr: newClientReader(conn),
	}
	s.sessions.Add(1)
	go func() {
		defer s.sessions.Done()
		defer s.clients.Add(-1)
		defer cancel(nil)
		sess.serve(ctx, overLimit)
	}()
}

// Clients returns the number of connected clients.
func (s *Server) Clients() int64 { return s.clients.Load() }
