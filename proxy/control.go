package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// The admin console names what its commands act on as pgbouncer names
// databases: a relay listener is one "database", named after the
// listener; a pooled listener is one per database its clients use,
// named "<listener>/<database>". A pooled listener's name alone stands
// for all of its databases.

// Target is what a console command acts on: every listener, one
// listener, or one database of a pooled listener.
type Target struct {
	Listener string // "" for all
	Database string // "" for all of the listener's
}

// ParseTarget reads a console argument: "", "rw" or "rw/app".
func (s *Server) ParseTarget(name string) (Target, error) {
	if name == "" {
		return Target{}, nil
	}
	ln, db, _ := strings.Cut(name, "/")
	for _, l := range s.all() {
		if l.name == ln {
			if db != "" && l.mode == Relay {
				return Target{}, fmt.Errorf("no such database: %s (listener %q relays: its database is %q)", name, ln, ln)
			}
			return Target{Listener: ln, Database: db}, nil
		}
	}
	return Target{}, fmt.Errorf("no such database: %s", name)
}

func (t Target) String() string {
	switch {
	case t.Listener == "":
		return "every listener"
	case t.Database == "":
		return t.Listener
	}
	return t.Listener + "/" + t.Database
}

// pooledIn returns the pooled listeners t names; an error if t names a
// relay listener only.
func (s *Server) pooledIn(t Target) ([]*listener, error) {
	var out []*listener
	for _, l := range s.all() {
		if t.Listener != "" && l.name != t.Listener {
			continue
		}
		if l.pools == nil {
			if t.Listener != "" {
				return nil, fmt.Errorf("listener %q relays: it has no pool to act on", l.name)
			}
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

// Pause holds new transactions of t's pooled listeners and waits until
// none of their server connections is in use (pgbouncer's PAUSE). ctx
// bounds the wait; the pools stay paused either way until Resume.
func (s *Server) Pause(ctx context.Context, t Target) error {
	ls, err := s.pooledIn(t)
	if err != nil {
		return err
	}
	var (
		errs []error
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	for _, l := range ls {
		wg.Go(func() {
			if err := l.pools.Pause(ctx, t.Database); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("listener %q: %w", l.name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Resume lets held transactions of t run (pgbouncer's RESUME); it
// reports whether anything was paused.
func (s *Server) Resume(t Target) (bool, error) {
	ls, err := s.pooledIn(t)
	if err != nil {
		return false, err
	}
	was := false
	for _, l := range ls {
		if l.pools.Resume(t.Database) {
			was = true
		}
	}
	return was, nil
}

// Paused reports whether t is paused.
func (s *Server) Paused(t Target) bool {
	ls, err := s.pooledIn(t)
	if err != nil || len(ls) == 0 {
		return false
	}
	for _, l := range ls {
		if !l.pools.Paused(t.Database) {
			return false
		}
	}
	return true
}

// Reconnect closes t's pooled server connections as soon as they are
// idle (pgbouncer's RECONNECT); with member set, only those to member.
func (s *Server) Reconnect(t Target, member string) error {
	ls, err := s.pooledIn(t)
	if err != nil {
		return err
	}
	for _, l := range ls {
		l.pools.Reconnect(member, t.Database)
	}
	return nil
}

// killedByAdmin ends the sessions a console KILL names, as
// pg_terminate_backend does.
var killedByAdmin = &KillCause{SQLState: codeAdminShutdown, Reason: EndKilled,
	Message: "terminating connection due to administrator command"}

// Kill ends every client session of t at once, console sessions aside,
// and pauses t's pools until RESUME, as pgbouncer's KILL does. It returns
// how many sessions it ended.
func (s *Server) Kill(t Target) int {
	hold, cancel := context.WithCancel(context.Background())
	cancel() // hold new checkouts, without waiting for the busy ones
	if ls, _ := s.pooledIn(t); len(ls) > 0 {
		for _, l := range ls {
			l.pools.Pause(hold, t.Database)
		}
	}
	n := 0
	s.clients.each(func(sess *session) {
		if sess.console || (t.Listener != "" && sess.ln.name != t.Listener) {
			return
		}
		if t.Database != "" && sess.database() != t.Database {
			return
		}
		sess.cancel(killedByAdmin)
		n++
	})
	return n
}
