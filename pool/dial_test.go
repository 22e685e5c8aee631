package pool_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
	"github.com/switchyard-proxy/switchyard/pool"
)

// server answers an SSLRequest with answer, then (for 'S') a TLS
// handshake, and reports whether the connection ended up encrypted.
func server(t *testing.T, answer byte) (addr string, encrypted chan bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cert, key, err := testbed.WriteCert(t.TempDir(), "s")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	encrypted = make(chan bool, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req := make([]byte, 8)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		c.Write([]byte{answer})
		if answer != 'S' {
			encrypted <- false
			io.Copy(io.Discard, c)
			return
		}
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{pair}})
		encrypted <- tc.Handshake() == nil
		io.Copy(io.Discard, tc)
	}()
	return ln.Addr().String(), encrypted
}

func TestDialTLSModes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		mode    pool.TLSMode
		answer  byte
		wantTLS bool
		wantErr error
	}{
		{pool.TLSPrefer, 'S', true, nil},
		{pool.TLSPrefer, 'N', false, nil},
		{pool.TLSRequire, 'S', true, nil},
		{pool.TLSRequire, 'N', false, pool.ErrServerNoTLS},
	} {
		addr, encrypted := server(t, tc.answer)
		d := &pool.Dialer{TLSMode: tc.mode, Timeout: 5 * time.Second}
		c, err := d.Dial(ctx, addr)
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("%s/%c: err %v, want %v", tc.mode, tc.answer, err, tc.wantErr)
		}
		if err != nil {
			continue
		}
		_, isTLS := c.(*tls.Conn)
		if isTLS != tc.wantTLS || <-encrypted != tc.wantTLS {
			t.Fatalf("%s/%c: TLS %v, want %v", tc.mode, tc.answer, isTLS, tc.wantTLS)
		}
		c.Close()
	}
}

func TestDialTimeout(t *testing.T) {
	// A server that never answers the SSLRequest.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	d := &pool.Dialer{Timeout: 200 * time.Millisecond}
	start := time.Now()
	if _, err := d.Dial(context.Background(), ln.Addr().String()); err == nil {
		t.Fatal("want a timeout")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %s with a 200ms connect timeout", el)
	}
}
