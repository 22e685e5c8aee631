package discovery_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

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

func member(t *topology.Snapshot, name string) topology.Member {
	m, _ := t.Member(name)
	return m
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

	snaps := &snapshots{}
	w, err := discovery.New(discovery.Options{Mode: discovery.ModeStatic, Static: discovery.StaticOptions{
		Members: []topology.Member{
			{Name: "a", Addr: up.Addr().String(), Role: topology.RolePrimary},
			{Name: "b", Addr: downAddr, Role: topology.RoleReplica},
		},
		Interval: 20 * time.Millisecond, Fall: 3, Rise: 2,
	}}, snaps.publish)
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)

	testbed.Eventually(t, 5*time.Second, "the first snapshot", func() bool { return snaps.last() != nil })
	first := snaps.first()
	if first.Revision != 1 || !member(first, "a").Healthy || !member(first, "b").Healthy {
		t.Fatalf("first snapshot should trust every member: %+v", first)
	}
	testbed.Eventually(t, 5*time.Second, "b to be suspect", func() bool { return member(snaps.last(), "b").Suspect })
	testbed.Eventually(t, 5*time.Second, "b to be marked down", func() bool { return !member(snaps.last(), "b").Healthy })
	if a := member(snaps.last(), "a"); !a.Healthy || a.Suspect {
		t.Fatalf("a answers every check: %+v", a)
	}
	// b comes back.
	back, err := net.Listen("tcp", downAddr)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", downAddr, err)
	}
	defer back.Close()
	go acceptAndClose(back)
	testbed.Eventually(t, 5*time.Second, "b to be marked up", func() bool { return member(snaps.last(), "b").Healthy })
	// Published snapshots are never modified afterwards.
	if !member(first, "b").Healthy {
		t.Fatal("a published snapshot changed")
	}
}

// scriptedDial answers each member's checks from a script of results:
// nil passes, an error fails with it.
type scriptedDial struct {
	mu     sync.Mutex
	script map[string][]error
	calls  map[string]int
}

func (d *scriptedDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := d.calls[addr]
	d.calls[addr]++
	s := d.script[addr]
	if i >= len(s) {
		i = len(s) - 1
	}
	if s[i] != nil {
		return nil, s[i]
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

func (d *scriptedDial) done(addr string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[addr] > len(d.script[addr])
}

// One failed check makes a member suspect (no new sessions) but not
// down (its sessions stay); only fall failures in a row take it down,
// and rise passes bring it back. A check that fails for a local reason
// (EMFILE, no ephemeral port) says nothing about the member.
func TestStaticFallAndRise(t *testing.T) {
	refused := syscall.ECONNREFUSED
	timeout := context.DeadlineExceeded
	d := &scriptedDial{calls: map[string]int{}, script: map[string][]error{
		// flap: one timeout in a storm, then fine
		"flap:1": {timeout, nil, nil},
		// dies: fall = 3 failures, then back after rise = 2 passes
		"dies:1": {refused, refused, refused, nil, refused, nil, nil},
		// local: out of descriptors every time: never suspect, never down
		"local:1": {syscall.EMFILE, syscall.EADDRNOTAVAIL, syscall.ENFILE, syscall.EMFILE},
	}}
	snaps := &snapshots{}
	w, err := discovery.New(discovery.Options{Mode: discovery.ModeStatic, Static: discovery.StaticOptions{
		Members: []topology.Member{
			{Name: "flap", Addr: "flap:1", Role: topology.RolePrimary},
			{Name: "dies", Addr: "dies:1", Role: topology.RoleReplica},
			{Name: "local", Addr: "local:1", Role: topology.RoleReplica},
		},
		Interval: 10 * time.Millisecond, Fall: 3, Rise: 2, Dial: d.dial,
	}, Logger: slog.New(slog.DiscardHandler)}, snaps.publish)
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	testbed.Eventually(t, 5*time.Second, "every script to run", func() bool {
		return d.done("flap:1") && d.done("dies:1") && d.done("local:1")
	})
	snaps.mu.Lock()
	defer snaps.mu.Unlock()
	type state struct{ healthy, suspect bool }
	seen := map[string][]state{}
	for _, s := range snaps.list {
		for _, m := range s.Members {
			st := state{m.Healthy, m.Suspect}
			if h := seen[m.Name]; len(h) == 0 || h[len(h)-1] != st {
				seen[m.Name] = append(h, st)
			}
		}
	}
	up, suspect, down := state{true, false}, state{true, true}, state{false, false}
	want := map[string][]state{
		"flap":  {up, suspect, up},
		"dies":  {up, suspect, down, up},
		"local": {up},
	}
	for name, w := range want {
		if got := seen[name]; !equalStates(got, w) {
			t.Errorf("%s went through %v, want %v", name, got, w)
		}
	}
}

func equalStates[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
