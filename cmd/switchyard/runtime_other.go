//go:build !linux

package main

// tuneRuntime does nothing where the measurements behind it were not made.
func tuneRuntime() {}
