//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package pool

import "syscall"

// peekSocket cannot ask the socket here; idleOpen falls back to a read
// with a short deadline.
func peekSocket(syscall.Conn) (open, ok bool) { return false, false }
