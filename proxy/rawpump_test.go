package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/internal/wire/wiretest"
)

// tcpPair is both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-done
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// safeBuf is a bytes.Buffer for one writer and a reader elsewhere.
type safeBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *safeBuf) Bytes() []byte               { s.mu.Lock(); defer s.mu.Unlock(); return bytes.Clone(s.b.Bytes()) }

// rawPump forwards the bytes read ahead first, then everything the
// socket brings, in pieces of any size and across pauses, seeing every
// message header, and ends with the source's EOF.
func TestRawPumpForwardsInOrder(t *testing.T) {
	src, peer := tcpPair(t)
	ahead := wiretest.Encode(t, &pgproto3.Query{String: "SELECT 1"})
	big := wiretest.Encode(t, &pgproto3.Query{String: string(bytes.Repeat([]byte("x"), 3*copyBufSize))})
	small := wiretest.Encode(t, &pgproto3.Sync{})
	var out safeBuf
	var types []byte
	var f wire.Framer
	done := make(chan error, 1)
	go func() {
		done <- rawPump(&out, src, ahead, &f, SideClient, func(int) {}, func(b byte) { types = append(types, b) })
	}()
	peer.Write(big[:10])
	time.Sleep(20 * time.Millisecond) // a pause mid-message: the pump parks and wakes
	peer.Write(big[10:])
	peer.Write(small)
	peer.CloseWrite()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) || sideOf(err) != SideClient {
			t.Fatalf("ended with %v (side %v), want the client's EOF", err, sideOf(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pump did not end at EOF")
	}
	want := append(append(append([]byte{}, ahead...), big...), small...)
	if !bytes.Equal(out.Bytes(), want) || string(types) != "QQS" {
		t.Fatalf("forwarded %d bytes (want %d), headers %q", len(out.Bytes()), len(want), types)
	}
}

// A deadline (how a session is interrupted) ends a parked pump.
func TestRawPumpEndsAtDeadline(t *testing.T) {
	src, _ := tcpPair(t)
	var f wire.Framer
	done := make(chan error, 1)
	go func() { done <- rawPump(io.Discard, src, nil, &f, SideServer, func(int) {}, nil) }()
	time.Sleep(20 * time.Millisecond)
	src.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) || sideOf(err) != SideServer {
			t.Fatalf("ended with %v, want the deadline on the server side", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a deadline did not end the pump")
	}
}

// A destination that fails ends the pump with its side's error.
func TestRawPumpDestinationFails(t *testing.T) {
	src, peer := tcpPair(t)
	dst, dstPeer := tcpPair(t)
	dstPeer.Close()
	dst.Close()
	var f wire.Framer
	done := make(chan error, 1)
	go func() { done <- rawPump(dst, src, nil, &f, SideClient, func(int) {}, nil) }()
	peer.Write(wiretest.Encode(t, &pgproto3.Sync{}))
	select {
	case err := <-done:
		if sideOf(err) != SideServer {
			t.Fatalf("ended with %v (side %v), want the destination's (server) side", err, sideOf(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failed write did not end the pump")
	}
}
