package discovery

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// What the external tests (package discovery_test) need from inside.

// PatroniKeys is a healthy cluster as Patroni leaves its keys.
func PatroniKeys() Keys { return patroniKeys() }

// FakeSource is an in-memory source: it answers with Patroni keys, or
// fails while down.
type FakeSource struct {
	mu   sync.Mutex
	keys Keys
	down bool
}

func NewFakeSource(keys Keys) *FakeSource { return &FakeSource{keys: keys} }

// SetDown makes the source fail (or answer again).
func (f *FakeSource) SetDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *FakeSource) read(ctx context.Context, after uint64, wait time.Duration) (*topology.Snapshot, uint64, error) {
	if after > 0 {
		if err := pause(ctx, min(wait, 5*time.Millisecond)); err != nil {
			return nil, 0, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, 0, errors.New("connection refused")
	}
	return decodePatroni(f.keys), after + 1, nil
}

func (f *FakeSource) polling() bool { return false }
func (f *FakeSource) close()        {}

// NewTestWatcher runs src under the one Watcher loop.
func NewTestWatcher(src *FakeSource, publish Publish, failClosed bool, grace, wait time.Duration, log *slog.Logger) *Watcher {
	return &Watcher{src: src, name: "fake", publish: publish, failClosed: failClosed,
		grace: grace, wait: wait, timeout: time.Second, log: log}
}
