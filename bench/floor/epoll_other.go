//go:build !linux

package main

import (
	"errors"
	"net"
)

type loop struct{}

func newLoop(string, int, bool) (*loop, error) { return nil, errors.New("-model epoll needs Linux") }
func (l *loop) run()                           {}
func (l *loop) add(net.Conn, []byte)           {}
