package main

import (
	"os"
	"syscall"
)

// tuneRuntime re-executes the binary, same PID and arguments, with
// sysmon's deep sleep off (see schedtraceOff). If the exec fails the
// process runs on with Go's defaults.
func tuneRuntime() {
	env, changed := sysmonEnv(os.Environ())
	if !changed {
		return
	}
	_ = syscall.Exec("/proc/self/exe", os.Args, env)
}
