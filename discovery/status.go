package discovery

import (
	"sync"
	"time"
)

// State is how far Switchyard trusts what discovery last said.
type State string

// States of a Watcher.
const (
	StateStarting   State = "starting"    // no answer from the source yet
	StateFresh      State = "fresh"       // the source answers
	StateStale      State = "stale"       // unreachable; the last topology is kept (keep-last, within dcs_grace)
	StateFailClosed State = "fail-closed" // unreachable; no primary until it answers
)

// Status is what the stats page, /ready and the console show of discovery.
type Status struct {
	Source     string    `json:"source"`  // "etcd 127.0.0.1:2379"
	Mode       string    `json:"mode"`    // etcd, consul, zookeeper, patroni-api, probe, static
	Polling    bool      `json:"polling"` // learns of promotions after the fact
	State      State     `json:"state"`
	Revision   uint64    `json:"revision"`    // of the last snapshot published
	LastAnswer time.Time `json:"last_answer"` // the source's last successful read
	LastChange time.Time `json:"last_change"` // the last snapshot published
	DownSince  time.Time `json:"down_since"`  // zero while the source answers
	LastError  string    `json:"last_error,omitempty"`
}

// status is a Watcher's Status, updated by Run.
type status struct {
	mu sync.Mutex
	s  Status
}

func (st *status) update(f func(*Status)) {
	st.mu.Lock()
	f(&st.s)
	st.mu.Unlock()
}

// Status returns the watcher's current status.
func (w *Watcher) Status() Status {
	w.status.mu.Lock()
	defer w.status.mu.Unlock()
	s := w.status.s
	s.Source, s.Mode, s.Polling = w.name, w.mode.String(), w.src.polling()
	if s.State == "" {
		s.State = StateStarting
	}
	return s
}
