package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/switchyard-proxy/switchyard/internal/wire/wiretest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/router"
)

func TestErrorResponseRendering(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{newClientError(codeCannotConnectNow, "no server"), "57P03"},
		{onServer(io.EOF), "08006"},
		{errLoginTimeout, "57014"},
		{&KillCause{SQLState: "57P01", Message: "bye"}, "57P01"},
		{errors.New("boom"), "XX000"},
	} {
		e := errorResponse(tc.err)
		if e.Code != tc.code || e.Severity != "FATAL" {
			t.Errorf("%v: %s %s", tc.err, e.Severity, e.Code)
		}
	}
	if e := errorResponse(errors.New("secret internal detail")); strings.Contains(e.Message, "secret") {
		t.Fatal("internal details leaked to the client")
	}
	v2 := encodeError(&clientError{Code: codeFeatureNotSupported, Message: "unsupported frontend protocol 2.0: server supports 3.0 to 3.0", v2: true})
	if string(v2) != "EFATAL:  unsupported frontend protocol 2.0: server supports 3.0 to 3.0\n\x00" {
		t.Fatalf("protocol 2 error: %q", v2)
	}
	for _, err := range []error{onClient(io.EOF), errServerRejected, onClient(&silentError{"x"}), errStartupTimeout} {
		if renderable(err) {
			t.Errorf("%v must end the connection without a word", err)
		}
	}
}

func TestRoleLostMessages(t *testing.T) {
	primary := RoleLost(&router.Loss{Binding: router.Binding{Listener: "rw", Backend: "pg1", Role: topology.RolePrimary}, Why: "was demoted to replica"})
	if primary.SQLState != "57P01" || primary.Message != `terminating connection because server "pg1" is no longer the primary: it was demoted to replica; reconnect to reach the current primary` {
		t.Errorf("primary: %+v", primary)
	}
	replica := RoleLost(&router.Loss{Binding: router.Binding{Listener: "ro", Backend: "pg2", Role: topology.RoleReplica}, Why: "was promoted to primary"})
	if replica.SQLState != "57P01" || replica.Message != `terminating connection because server "pg2" no longer serves listener "ro" as a replica: it was promoted to primary; reconnect` {
		t.Errorf("replica: %+v", replica)
	}
}

func TestRegistry(t *testing.T) {
	reg := NewRegistry()
	type sess struct {
		ctx    context.Context
		remove func()
	}
	var all []sess
	for _, s := range []SessionInfo{
		{ID: 1, Binding: router.Binding{Listener: "rw", Role: topology.RolePrimary, Backend: "p"}},
		{ID: 2, Binding: router.Binding{Listener: "ro", Role: topology.RoleReplica, Backend: "r1"}},
		{ID: 3, Binding: router.Binding{Listener: "ro", Role: topology.RoleReplica, Backend: "p"}},
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		all = append(all, sess{ctx, reg.Add(s, cancel)})
	}
	if c := reg.Counts(); c["p"] != 2 || c["r1"] != 1 || reg.Len() != 3 {
		t.Fatalf("counts %v len %d", c, reg.Len())
	}
	n := reg.Evict(func(s SessionInfo) *KillCause {
		if s.Backend == "p" && s.Role == topology.RolePrimary {
			return RoleLost(&router.Loss{Binding: s.Binding, Why: "was demoted to replica"})
		}
		return nil
	})
	if n != 1 {
		t.Fatalf("ended %d, want 1", n)
	}
	var kc *KillCause
	if !errors.As(context.Cause(all[0].ctx), &kc) || kc.SQLState != "57P01" || !strings.Contains(kc.Message, `"p" is no longer the primary`) {
		t.Fatalf("cause = %v", context.Cause(all[0].ctx))
	}
	if all[1].ctx.Err() != nil || all[2].ctx.Err() != nil {
		t.Fatal("sessions that did not lose their role were ended")
	}
	for _, s := range all {
		s.remove()
		s.remove() // twice is harmless
	}
	if reg.Len() != 0 || len(reg.Counts()) != 0 {
		t.Fatalf("registry not empty: %v", reg.Counts())
	}
}

// A client's cancel key is its server's process ID with a secret of
// Switchyard's own, as long as the server's; keys are unique even when
// two servers hand out the same PID.
func TestCancelKeys(t *testing.T) {
	var m cancelMap
	a := cancelTarget{addr: "a:5432", key: pool.Key{PID: 42, Secret: "\x01\x02\x03\x04"}}
	b := cancelTarget{addr: "b:5432", key: pool.Key{PID: 42, Secret: "\x01\x02\x03\x04"}}
	long := cancelTarget{addr: "c:5432", key: pool.Key{PID: 7, Secret: string(bytes.Repeat([]byte{9}, 32))}}
	ka, kb, kl := m.register(a), m.register(b), m.register(long)
	if ka.PID != 42 || kb.PID != 42 || kl.PID != 7 {
		t.Fatalf("PIDs changed: %d %d %d", ka.PID, kb.PID, kl.PID)
	}
	if ka == kb || ka.Secret == a.key.Secret || len(ka.Secret) != 4 || len(kl.Secret) != 32 {
		t.Fatalf("secrets: %x %x %x", ka.Secret, kb.Secret, kl.Secret)
	}
	if got, ok := m.lookup(kb); !ok || got.addr != b.addr || got.key != b.key {
		t.Fatalf("lookup(b) = %+v %v", got, ok)
	}
	if _, ok := m.lookup(pool.Key{PID: 42, Secret: a.key.Secret}); ok {
		t.Fatal("the server's own secret must not cancel through Switchyard")
	}
	m.remove(ka)
	if _, ok := m.lookup(ka); ok {
		t.Fatal("removed key still known")
	}
}

func TestFitDescriptors(t *testing.T) {
	relay := func(clients, startups int) Demand {
		return Demand{MaxClients: clients, MaxStartups: startups, PerClient: 2}
	}
	pooled := Demand{MaxClients: 10000, MaxStartups: 200, PerClient: 1, Servers: 40}
	for _, tc := range []struct {
		limit  uint64
		demand Demand
		want   Budget
	}{
		{1 << 20, relay(10000, 1000), Budget{Limit: 1 << 20, MaxClients: 10000, MaxStartups: 1000, PerClient: 2, Need: 21064}},
		{21064, relay(10000, 1000), Budget{Limit: 21064, MaxClients: 10000, MaxStartups: 1000, PerClient: 2, Need: 21064}},
		{1024, relay(10000, 1000), Budget{Limit: 1024, MaxClients: 360, MaxStartups: 240, PerClient: 2, Need: 21064, Capped: true}},
		{1024, relay(100, 1000), Budget{Limit: 1024, MaxClients: 100, MaxStartups: 240, PerClient: 2, Need: 1264, Capped: true}},
		// Every listener pooled: a client holds one descriptor, the pools'
		// servers come off the top.
		{20000, pooled, Budget{Limit: 20000, MaxClients: 10000, MaxStartups: 200, PerClient: 1, Need: 10304}},
		{1024, pooled, Budget{Limit: 1024, MaxClients: 720, MaxStartups: 200, PerClient: 1, Need: 10304, Capped: true}},
	} {
		if got := fitDescriptors(tc.limit, tc.demand); got != tc.want {
			t.Errorf("limit %d, %+v: %+v, want %+v", tc.limit, tc.demand, got, tc.want)
		}
	}
}

func TestPumpChecksFramingAndMarksSides(t *testing.T) {
	stream := wiretest.Encode(t, &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Terminate{})
	var dst bytes.Buffer
	var f wire.Framer
	var types []byte
	var counted int
	err := pump(&dst, bytes.NewReader(stream), &f, SideClient, func(n int) { counted += n }, func(t byte) { types = append(types, t) })
	if counted != len(stream) || !bytes.Equal(dst.Bytes(), stream) || string(types) != "QX" {
		t.Fatalf("copied %d %q types %q", counted, dst.Bytes(), types)
	}
	if sideOf(err) != SideClient || !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want client EOF", err)
	}
	// A garbage length from the server is a server-side protocol error,
	// found before anything is written.
	dst.Reset()
	err = pump(&dst, bytes.NewReader([]byte{'D', 0, 0, 0, 1}), &wire.Framer{}, SideServer, func(int) {}, nil)
	var pe *protocolError
	if sideOf(err) != SideServer || !errors.As(err, &pe) || dst.Len() != 0 {
		t.Fatalf("err = %v (wrote %d), want a server protocol error and nothing written", err, dst.Len())
	}
}

func TestWithoutChannelBinding(t *testing.T) {
	in := wiretest.Encode(t, &pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}})
	out := withoutChannelBinding(in)
	var m pgproto3.AuthenticationSASL
	if err := m.Decode(out[5:]); err != nil {
		t.Fatal(err)
	}
	if len(m.AuthMechanisms) != 1 || m.AuthMechanisms[0] != "SCRAM-SHA-256" {
		t.Fatalf("mechanisms %v", m.AuthMechanisms)
	}
	resp := wiretest.Encode(t, &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("y,,n=,r=abc")})
	if f := gs2Flag(resp); f != 'y' {
		t.Fatalf("gs2Flag = %q", f)
	}
}

// A kill cancels the session's context; serve's interrupt may end the
// phase's I/O before the cancellation has reached the phase's own
// context (children are cancelled one by one). The phase still returns
// the kill's cause, so the client is told why, not "client left".
func TestPhaseReturnsTheSessionsCause(t *testing.T) {
	root, cancel := context.WithCancelCause(context.Background())
	kc := &KillCause{SQLState: "57P01", Message: "killed"}
	cancel(kc)
	s := &session{root: root}
	phaseCtx := context.Background() // stands for a descendant not yet reached
	err := s.phase(phaseCtx, func() error { return onClient(os.ErrDeadlineExceeded) })
	if !errors.Is(err, kc) {
		t.Fatalf("phase returned %v, want the session's cause %v", err, kc)
	}
	s.root = context.Background()
	if err := s.phase(phaseCtx, func() error { return onClient(io.EOF) }); !errors.Is(err, io.EOF) {
		t.Fatalf("phase of a live session returned %v, want the I/O error", err)
	}
}
