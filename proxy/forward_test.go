package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func encode(t testing.TB, msgs ...pgproto3.Message) []byte {
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestFramerBoundariesAnySplit(t *testing.T) {
	stream := encode(t,
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 23}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte(strings.Repeat("v", 1000))}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	)
	ends := map[int]bool{}
	{
		var f framer
		for i := range stream {
			f.scan(stream[i:i+1], nil)
			if f.atBoundary() {
				ends[i+1] = true
			}
		}
		if len(ends) != 4 || !ends[len(stream)] {
			t.Fatalf("boundaries at %v", ends)
		}
	}
	// Any split point gives the same boundaries and types.
	for cut := 0; cut <= len(stream); cut++ {
		var f framer
		var types []byte
		on := func(t byte) { types = append(types, t) }
		f.scan(stream[:cut], on)
		if f.atBoundary() != (cut == 0 || ends[cut]) {
			t.Fatalf("cut %d: atBoundary = %v", cut, f.atBoundary())
		}
		f.scan(stream[cut:], on)
		if !f.atBoundary() || string(types) != "TDCZ" || f.last != 'Z' {
			t.Fatalf("cut %d: boundary %v types %q", cut, f.atBoundary(), types)
		}
	}
}

func TestFramerRejectsBadLength(t *testing.T) {
	var f framer
	if err := f.scan([]byte{'Q', 0, 0, 0, 3}, nil); err == nil {
		t.Fatal("length 3 accepted")
	}
	f = framer{}
	if err := f.scan([]byte{'Q', 0x7f, 0xff, 0xff, 0xff}, nil); err == nil {
		t.Fatal("2 GB message accepted")
	}
}

func TestPumpCopiesAndMarksSides(t *testing.T) {
	stream := encode(t, &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Terminate{})
	var dst bytes.Buffer
	var f framer
	var types []byte
	n, err := pump(&dst, bytes.NewReader(stream), &f, SideClient, func(t byte) { types = append(types, t) })
	if n != int64(len(stream)) || !bytes.Equal(dst.Bytes(), stream) || string(types) != "QX" {
		t.Fatalf("copied %d %q types %q", n, dst.Bytes(), types)
	}
	if sideOf(err) != SideClient || !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want client EOF", err)
	}
	// A garbage length from the server is a server-side protocol error.
	_, err = pump(io.Discard, bytes.NewReader([]byte{'D', 0, 0, 0, 1}), &framer{}, SideServer, nil)
	var pe *protocolError
	if sideOf(err) != SideServer || !errors.As(err, &pe) {
		t.Fatalf("err = %v, want server protocol error", err)
	}
}

func TestWithoutChannelBinding(t *testing.T) {
	in := encode(t, &pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}})
	out := withoutChannelBinding(in)
	var m pgproto3.AuthenticationSASL
	if err := m.Decode(out[5:]); err != nil {
		t.Fatal(err)
	}
	if len(m.AuthMechanisms) != 1 || m.AuthMechanisms[0] != "SCRAM-SHA-256" {
		t.Fatalf("mechanisms %v", m.AuthMechanisms)
	}
	resp := encode(t, &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("y,,n=,r=abc")})
	if f := gs2Flag(resp); f != 'y' {
		t.Fatalf("gs2Flag = %q", f)
	}
}

func TestStartupOverPipe(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go func() {
		client.Write(encode(t, &pgproto3.SSLRequest{}))
		client.Write(encode(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
			Parameters: map[string]string{"user": "u", "database": "d"}}))
	}()
	r := bufio.NewReader(server)
	p, err := readStartup(r)
	if err != nil || p.code != codeSSLRequest {
		t.Fatalf("first packet: %v %d", err, p.code)
	}
	p, err = readStartup(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseStartupMessage(p)
	if err != nil || m.Parameters["user"] != "u" || m.Parameters["database"] != "d" {
		t.Fatalf("startup: %v %+v", err, m)
	}
}

func TestErrorResponseRendering(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{newClientError(codeCannotConnectNow, "no server"), "57P03"},
		{onServer(io.EOF), "08006"},
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
}

// FuzzStartup feeds arbitrary bytes to the startup parsers: they must
// return an error or a packet, never panic, and never accept a length
// outside PostgreSQL's bounds.
func FuzzStartup(f *testing.F) {
	f.Add(encode(f, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "u"}}))
	f.Add(encode(f, &pgproto3.SSLRequest{}))
	f.Add(encode(f, &pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}}))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 12), 2<<16))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for i := 0; i < 4; i++ {
			p, err := readStartup(r)
			if err != nil {
				return
			}
			if len(p.raw) < 8 || len(p.raw) > maxStartupLen {
				t.Fatalf("accepted a %d-byte packet", len(p.raw))
			}
			switch p.code {
			case codeCancelRequest:
				parseCancel(p)
			case codeSSLRequest, codeGSSENCRequest:
			default:
				if m, err := parseStartupMessage(p); err == nil && m.Parameters["user"] == "" {
					t.Fatal("accepted a startup message without a user")
				}
			}
		}
		// Typed messages after startup.
		readMessage(bufio.NewReader(bytes.NewReader(data)), maxAuthMsgLen)
		var fr framer
		fr.scan(data, nil)
	})
}
