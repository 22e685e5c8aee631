package router

import (
	"context"
	"sync"
)

// Session describes a live client session bound to a backend.
type Session struct {
	ID       uint64
	Listener string
	Role     string // the backend's role when it was chosen: "primary" or "replica"
	Backend  string // member name
	Client   string // client address
}

// KillCause is why sessions were ended. The proxy renders it to the client
// as a FATAL ErrorResponse with this SQLSTATE and message.
type KillCause struct {
	SQLState string
	Message  string
}

func (k *KillCause) Error() string { return k.Message }

// Registry is the set of live sessions, indexed by backend, so that a
// topology change can end every session bound to a member that changed
// role. It is safe for concurrent use.
type Registry struct {
	mu        sync.Mutex
	byBackend map[string]map[*Entry]struct{}
}

// Entry is a registered session; pass it to Remove when the session ends.
type Entry struct {
	Session Session
	cancel  context.CancelCauseFunc
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byBackend: map[string]map[*Entry]struct{}{}}
}

// Add registers s; cancel ends it with a cause.
func (r *Registry) Add(s Session, cancel context.CancelCauseFunc) *Entry {
	e := &Entry{Session: s, cancel: cancel}
	r.mu.Lock()
	set := r.byBackend[s.Backend]
	if set == nil {
		set = map[*Entry]struct{}{}
		r.byBackend[s.Backend] = set
	}
	set[e] = struct{}{}
	r.mu.Unlock()
	return e
}

// Remove unregisters e. Removing twice is harmless.
func (r *Registry) Remove(e *Entry) {
	r.mu.Lock()
	if set := r.byBackend[e.Session.Backend]; set != nil {
		delete(set, e)
		if len(set) == 0 {
			delete(r.byBackend, e.Session.Backend)
		}
	}
	r.mu.Unlock()
}

// Kill ends every session for which match returns true, with cause, and
// returns how many it ended.
func (r *Registry) Kill(match func(Session) bool, cause *KillCause) int {
	return r.Evict(func(s Session) *KillCause {
		if match(s) {
			return cause
		}
		return nil
	})
}

// Evict ends every session for which why returns a cause, with that
// cause, and returns how many it ended. The sessions are cancelled after
// the lock is released; each one sends its client the cause and closes on
// its own.
func (r *Registry) Evict(why func(Session) *KillCause) int {
	type victim struct {
		e  *Entry
		kc *KillCause
	}
	var victims []victim
	r.mu.Lock()
	for _, set := range r.byBackend {
		for e := range set {
			if kc := why(e.Session); kc != nil {
				victims = append(victims, victim{e, kc})
			}
		}
	}
	r.mu.Unlock()
	for _, v := range victims {
		v.e.cancel(v.kc)
	}
	return len(victims)
}

// Counts returns the number of live sessions per backend.
func (r *Registry) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.byBackend))
	for b, set := range r.byBackend {
		out[b] = len(set)
	}
	return out
}

// Len returns the number of live sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, set := range r.byBackend {
		n += len(set)
	}
	return n
}
