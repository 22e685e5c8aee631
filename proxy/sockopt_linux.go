package proxy

import (
	"net"
	"syscall"
)

// keepAlive is what Go sets on every accepted connection by default:
// probes after 15 s idle, every 15 s, 9 of them.
var keepAlive = []struct{ level, opt, val int }{
	{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
	{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 15},
	{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 15},
	{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 9},
}

// listenConfig is how listeners are opened. On Linux an accepted socket
// inherits its listening socket's options, so keep-alive is set once on
// the listener instead of with four setsockopt calls per client (Go's
// default): part of the cost of a new connection (bench/RESULTS.md).
func listenConfig() *net.ListenConfig {
	return &net.ListenConfig{KeepAlive: -1, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, o := range keepAlive {
				if serr = syscall.SetsockoptInt(int(fd), o.level, o.opt, o.val); serr != nil {
					return
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
}
