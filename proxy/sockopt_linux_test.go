package proxy

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// A client accepted by a listener has keep-alive on with Go's default
// timing although nothing set it on the accepted socket itself.
func TestAcceptedSocketsInheritKeepAlive(t *testing.T) {
	ln, err := listenConfig().Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rc, err := a.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		for _, o := range keepAlive {
			v, err := syscall.GetsockoptInt(int(fd), o.level, o.opt)
			if err != nil || v != o.val {
				t.Errorf("option %d/%d on the accepted socket = %d (%v), want %d", o.level, o.opt, v, err, o.val)
			}
		}
		if v, _ := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY); v != 1 {
			t.Errorf("TCP_NODELAY = %d, want 1", v)
		}
	})
}
