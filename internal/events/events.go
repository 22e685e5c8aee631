// Package events keeps the last things that happened to the cluster and
// to Switchyard (role changes, sessions ended, DCS outages, reloads) for
// the stats page and /api/status. It is a bounded ring: the page shows
// the recent past, the log keeps the rest.
package events

import (
	"fmt"
	"sync"
	"time"
)

// Keep is how many events a Log holds.
const Keep = 50

// Kinds of events.
const (
	Topology  = "topology"  // a member changed role or health
	Sessions  = "sessions"  // sessions ended by Switchyard, and why
	Discovery = "discovery" // the DCS went silent or answered again
	Reload    = "reload"    // the configuration was reloaded (or not)
	Admin     = "admin"     // a console command changed something
)

// Event is one line of the list.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// Log is safe for concurrent use; a nil *Log drops everything.
type Log struct {
	mu   sync.Mutex
	ring [Keep]Event
	next int // index of the next write
	n    int // events held, up to Keep
	now  func() time.Time
}

// New returns an empty Log.
func New() *Log { return &Log{now: time.Now} }

// Add records an event, formatted as fmt.Sprintf does.
func (l *Log) Add(kind, format string, args ...any) {
	if l == nil {
		return
	}
	e := Event{Time: l.now(), Kind: kind, Message: fmt.Sprintf(format, args...)}
	l.mu.Lock()
	l.ring[l.next] = e
	l.next = (l.next + 1) % Keep
	l.n = min(l.n+1, Keep)
	l.mu.Unlock()
}

// List returns the events held, newest first.
func (l *Log) List() []Event {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Event, 0, l.n)
	for i := 1; i <= l.n; i++ {
		out = append(out, l.ring[(l.next-i+Keep)%Keep])
	}
	return out
}
