package discovery

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/router"
)

// fakeSource is an in-memory source: it answers with the current keys, or
// fails while down.
type fakeSource struct {
	mu   sync.Mutex
	keys Keys
	down bool
}

func (f *fakeSource) set(change func(*fakeSource)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *fakeSource) read(ctx context.Context, after uint64, wait time.Duration) (*router.Topology, uint64, error) {
	timer := time.NewTimer(min(wait, 5*time.Millisecond))
	defer timer.Stop()
	if after > 0 {
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-timer.C:
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, 0, errors.New("connection refused")
	}
	return decodePatroni(f.keys), after + 1, nil
}

func (f *fakeSource) close() {}

func TestWatcherKeepLastThenFailClosed(t *testing.T) {
	for _, mode := range []string{"keep-last", "fail-closed"} {
		t.Run(mode, func(t *testing.T) {
			src := &fakeSource{keys: patroniKeys()}
			var logs bytes.Buffer
			var logMu sync.Mutex
			snaps := &snapshots{}
			w := &Watcher{src: src, name: "fake", publish: snaps.publish, failClosed: mode == "fail-closed",
				grace: 300 * time.Millisecond, wait: 20 * time.Millisecond, timeout: time.Second,
				log: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("Run returned %v", err)
				}
			}()
			hasPrimary := func() bool { _, ok := snaps.last().Primary(); return ok }
			waitFor(t, "first snapshot", func() bool { return snaps.last() != nil && hasPrimary() })
			rev := snaps.last().Revision
			time.Sleep(50 * time.Millisecond) // unchanged reads publish nothing
			if snaps.last().Revision != rev {
				t.Fatalf("an unchanged source published revision %d", snaps.last().Revision)
			}

			src.set(func(f *fakeSource) { f.down = true })
			down := time.Now()
			waitFor(t, "fail-closed snapshot", func() bool { return !hasPrimary() })
			held := time.Since(down)
			if mode == "keep-last" && held < 250*time.Millisecond {
				t.Errorf("keep-last dropped the primary after %v, before dcs_grace (300ms)", held)
			}
			if mode == "fail-closed" && held > 250*time.Millisecond {
				t.Errorf("fail-closed kept the primary for %v", held)
			}
			if m, _ := snaps.last().Member("pg1"); !strings.Contains(m.Why, "unreachable") {
				t.Errorf("closed primary's reason = %q", m.Why)
			}
			reps := 0
			for _, m := range snaps.last().Members {
				if m.Role == router.RoleReplica {
					reps++
				}
			}
			if reps != 2 {
				t.Errorf("fail-closed kept %d replicas, want 2 (reads go on)", reps)
			}
			time.Sleep(100 * time.Millisecond) // more failed retries
			src.set(func(f *fakeSource) { f.down = false })
			waitFor(t, "routing resumed", hasPrimary)

			logMu.Lock()
			text := logs.String()
			logMu.Unlock()
			for _, msg := range []string{"discovery source unreachable", "discovery source silent beyond dcs_grace", "discovery source answers again"} {
				if n := strings.Count(text, msg); n != 1 {
					t.Errorf("%q logged %d times, want once:\n%s", msg, n, text)
				}
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
