package discovery_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// snapshots records what a watcher publishes.
type snapshots struct {
	mu   sync.Mutex
	list []*topology.Snapshot
}

func (s *snapshots) publish(t *topology.Snapshot) {
	s.mu.Lock()
	s.list = append(s.list, t)
	s.mu.Unlock()
}

func (s *snapshots) last() *topology.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) == 0 {
		return nil
	}
	return s.list[len(s.list)-1]
}

func (s *snapshots) first() *topology.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) == 0 {
		return nil
	}
	return s.list[0]
}

// run starts w and stops it at the end of the test, checking it returns
// the context's error.
func run(t *testing.T, w *discovery.Watcher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not stop on cancel")
		}
	})
}

func TestWatcherKeepLastThenFailClosed(t *testing.T) {
	for _, mode := range []string{"keep-last", "fail-closed"} {
		t.Run(mode, func(t *testing.T) {
			src := discovery.NewFakeSource(discovery.PatroniKeys())
			logs := &testbed.LogBuffer{}
			snaps := &snapshots{}
			w := discovery.NewTestWatcher(src, snaps.publish, mode == "fail-closed", 300*time.Millisecond, 20*time.Millisecond,
				slog.New(slog.NewTextHandler(logs, nil)))
			run(t, w)
			hasPrimary := func() bool { _, ok := snaps.last().Primary(); return ok }
			testbed.Eventually(t, 5*time.Second, "first snapshot", func() bool { return snaps.last() != nil && hasPrimary() })
			rev := snaps.last().Revision
			time.Sleep(50 * time.Millisecond) // unchanged reads publish nothing
			if snaps.last().Revision != rev {
				t.Fatalf("an unchanged source published revision %d", snaps.last().Revision)
			}

			src.SetDown(true)
			down := time.Now()
			testbed.Eventually(t, 5*time.Second, "fail-closed snapshot", func() bool { return !hasPrimary() })
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
				if m.Role == topology.RoleReplica {
					reps++
				}
			}
			if reps != 2 {
				t.Errorf("fail-closed kept %d replicas, want 2 (reads go on)", reps)
			}
			time.Sleep(100 * time.Millisecond) // more failed retries
			src.SetDown(false)
			testbed.Eventually(t, 5*time.Second, "routing resumed", hasPrimary)

			for _, msg := range []string{"discovery source unreachable", "discovery source silent beyond dcs_grace", "discovery source answers again"} {
				if n := len(logs.Matching(msg)); n != 1 {
					t.Errorf("%q logged %d times, want once:\n%s", msg, n, logs.String())
				}
			}
		})
	}
}
