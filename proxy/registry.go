package proxy

import (
	"context"
	"sync"

	"github.com/switchyard-proxy/switchyard/router"
)

// SessionInfo is what the registry knows of a live session.
type SessionInfo struct {
	ID     uint64
	Client string // client address
	router.Binding
}

// Registry is the set of live sessions bound to a member, indexed by
// member, so that a topology change can end every session bound to a
// member that changed role. It is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	byMember map[string]map[*entry]struct{}
}

type entry struct {
	info   SessionInfo
	cancel context.CancelCauseFunc
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byMember: map[string]map[*entry]struct{}{}}
}

// Add registers s; cancel ends it with a cause. The returned func removes
// it; calling it twice is harmless.
func (r *Registry) Add(s SessionInfo, cancel context.CancelCauseFunc) (remove func()) {
	e := &entry{info: s, cancel: cancel}
	r.mu.Lock()
	set := r.byMember[s.Backend]
	if set == nil {
		set = map[*entry]struct{}{}
		r.byMember[s.Backend] = set
	}
	set[e] = struct{}{}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if set := r.byMember[s.Backend]; set != nil {
			delete(set, e)
			if len(set) == 0 {
				delete(r.byMember, s.Backend)
			}
		}
	}
}

// Evict ends every session for which why returns a cause, with that
// cause, and returns how many it ended. The sessions are cancelled after
// the lock is released; each one tells its client and closes on its own.
func (r *Registry) Evict(why func(SessionInfo) *KillCause) int {
	type victim struct {
		e  *entry
		kc *KillCause
	}
	var victims []victim
	r.mu.Lock()
	for _, set := range r.byMember {
		for e := range set {
			if kc := why(e.info); kc != nil {
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

// Kill ends every session for which match returns true, with cause.
func (r *Registry) Kill(match func(SessionInfo) bool, cause *KillCause) int {
	return r.Evict(func(s SessionInfo) *KillCause {
		if match(s) {
			return cause
		}
		return nil
	})
}

// Counts returns the number of live sessions per member.
func (r *Registry) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.byMember))
	for b, set := range r.byMember {
		out[b] = len(set)
	}
	return out
}

// Len returns the number of live sessions bound to a member.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, set := range r.byMember {
		n += len(set)
	}
	return n
}
