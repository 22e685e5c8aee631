// Package pool owns server connections: establishing them (Dialer),
// logging in (Login), the connection type relay and pooling share (Conn),
// and pgbouncer-style pools of them for session and transaction modes
// (Set, one pool per member, database and user).
package pool

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// TLSMode is the proxy-to-server TLS policy, as libpq's sslmode.
type TLSMode uint8

// TLS modes; the zero value is prefer, libpq's default.
const (
	TLSPrefer  TLSMode = iota // TLS when the server offers it
	TLSDisable                // never
	TLSRequire                // always, without verifying the server
)

func (m TLSMode) String() string { return [...]string{"prefer", "disable", "require"}[m] }

// ErrServerNoTLS is returned when TLS is required but the server refuses it.
var ErrServerNoTLS = errors.New("server does not support TLS")

// DialFunc opens a network connection; net.Dialer.DialContext fits.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer establishes server connections: TCP within Timeout, then TLS
// negotiation according to TLSMode. The zero value dials plain TCP with a
// 5 s timeout and prefers TLS.
type Dialer struct {
	Timeout time.Duration
	TLSMode TLSMode
	// TLSConfig is cloned for each connection; nil means encrypt without
	// verifying the server, like libpq's sslmode=require.
	TLSConfig *tls.Config
	DialFunc  DialFunc
}

// ConnectTimeout is the bound on one connection attempt.
func (d *Dialer) ConnectTimeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return 5 * time.Second
}

func (d *Dialer) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	if d.DialFunc != nil {
		return d.DialFunc(ctx, "tcp", addr)
	}
	return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
}

// Dial connects to addr within the connect timeout, TLS negotiation
// included. The returned connection is ready for a StartupMessage.
func (d *Dialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.ConnectTimeout())
	defer cancel()
	conn, err := d.dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	if d.TLSMode == TLSDisable {
		return conn, nil
	}
	tconn, err := d.negotiateTLS(ctx, conn, addr)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tconn, nil
}

// sslRequest is the 8-byte SSLRequest packet.
var sslRequest = func() []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, 8)
	binary.BigEndian.PutUint32(b[4:], 80877103)
	return b
}()

func (d *Dialer) negotiateTLS(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if stop() {
			conn.SetDeadline(time.Time{})
		}
	}()
	if _, err := conn.Write(sslRequest); err != nil {
		return nil, fmt.Errorf("TLS negotiation: %w", ctxErr(ctx, err))
	}
	var resp [1]byte
	if _, err := io.ReadFull(conn, resp[:]); err != nil {
		return nil, fmt.Errorf("TLS negotiation: %w", ctxErr(ctx, err))
	}
	switch resp[0] {
	case 'S':
	case 'N':
		if d.TLSMode == TLSRequire {
			return nil, ErrServerNoTLS
		}
		return conn, nil
	default:
		return nil, fmt.Errorf("TLS negotiation: unexpected answer %q to SSLRequest", resp[0])
	}
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // libpq sslmode=require semantics
	if d.TLSConfig != nil {
		cfg = d.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	tconn := tls.Client(conn, cfg)
	if err := tconn.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tconn, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
