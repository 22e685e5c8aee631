//go:build linux || darwin || freebsd || netbsd || openbsd

package pool

import "syscall"

// peekSocket looks at c's receive queue without blocking or consuming:
// open is false when data or EOF is waiting; ok is false when the socket
// could not be asked.
func peekSocket(c syscall.Conn) (open, ok bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, false
	}
	var perr error
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, perr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	})
	switch {
	case err != nil:
		return false, true
	case perr == syscall.EAGAIN || perr == syscall.EWOULDBLOCK:
		return true, true
	case perr == syscall.EINTR:
		return false, false
	default: // data, EOF (n == 0) or a socket error
		return false, true
	}
}
