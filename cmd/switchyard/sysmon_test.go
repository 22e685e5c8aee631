package main

import (
	"slices"
	"testing"
)

func TestSysmonEnv(t *testing.T) {
	for _, c := range []struct {
		in      []string
		want    []string
		changed bool
	}{
		{[]string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=" + schedtraceOff}, true},
		{[]string{"GODEBUG=madvdontneed=1", "A=b"}, []string{"A=b", "GODEBUG=madvdontneed=1," + schedtraceOff}, true},
		// The operator's own choice stands, Go's default included.
		{[]string{"GODEBUG=schedtrace=0"}, []string{"GODEBUG=schedtrace=0"}, false},
		{[]string{"GODEBUG=gctrace=1, schedtrace=1000"}, []string{"GODEBUG=gctrace=1, schedtrace=1000"}, false},
	} {
		got, changed := sysmonEnv(c.in)
		if changed != c.changed || !slices.Equal(got, c.want) {
			t.Errorf("sysmonEnv(%q) = %q, %v; want %q, %v", c.in, got, changed, c.want, c.changed)
		}
	}
}
