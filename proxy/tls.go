package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
)

// LoadTLS reads a certificate and key for client TLS termination.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// newClientReader buffers reads from a client; the relay later reads
// through the same buffer so no byte read during login is lost.
func newClientReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 4<<10) }
