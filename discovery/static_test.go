package discovery

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/router"
)

type snapshots struct {
	mu   sync.Mutex
	list []*router.Topology
}

func (s *snapshots) publish(t *router.Topology) {
	s.mu.Lock()
	s.list = append(s.list, t)
	s.mu.Unlock()
}

func (s *snapshots) last() *router.Topology {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) == 0 {
		return nil
	}
	return s.list[len(s.list)-1]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// acceptAndClose answers TCP health checks until ln is closed.
func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func healthy(t *router.Topology, name string) bool {
	m, _ := t.Member(name)
	return m.Healthy
}

func TestStaticFollowsReachability(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go acceptAndClose(up)
	down, _ := net.Listen("tcp", "127.0.0.1:0")
	downAddr := down.Addr().String()
	down.Close()

	var snaps snapshots
	s := &Static{
		Members: []router.Member{
			{Name: "a", Addr: up.Addr().String(), Role: router.RolePrimary},
			{Name: "b", Addr: downAddr, Role: router.RoleReplica},
		},
		Interval: 20 * time.Millisecond,
		Publish:  snaps.publish,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	waitFor(t, "the first snapshot", func() bool { return snaps.last() != nil })
	first := snaps.list[0]
	if first.Revision != 1 || !healthy(first, "a") || !healthy(first, "b") {
		t.Fatalf("first snapshot should trust every member: %+v", first)
	}
	waitFor(t, "b to be marked down", func() bool { return !healthy(snaps.last(), "b") })
	if !healthy(snaps.last(), "a") || snaps.last().Revision != 2 {
		t.Fatalf("second snapshot: %+v", snaps.last())
	}
	// b comes back.
	back, err := net.Listen("tcp", downAddr)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", downAddr, err)
	}
	defer back.Close()
	go acceptAndClose(back)
	waitFor(t, "b to be marked up", func() bool { return healthy(snaps.last(), "b") })
	// Published snapshots are never modified afterwards.
	if !healthy(first, "b") {
		t.Fatal("a published snapshot changed")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop on cancel")
	}
}
