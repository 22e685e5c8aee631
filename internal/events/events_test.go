package events

import (
	"fmt"
	"testing"
	"time"
)

func TestLogKeepsTheNewest(t *testing.T) {
	l := New()
	base := time.Unix(1000, 0)
	i := 0
	l.now = func() time.Time { i++; return base.Add(time.Duration(i) * time.Second) }
	if got := l.List(); len(got) != 0 {
		t.Fatalf("empty log lists %v", got)
	}
	for n := range Keep + 7 {
		l.Add(Topology, "event %d", n)
	}
	got := l.List()
	if len(got) != Keep {
		t.Fatalf("holds %d events, want %d", len(got), Keep)
	}
	if got[0].Message != fmt.Sprintf("event %d", Keep+6) || got[Keep-1].Message != "event 7" {
		t.Fatalf("newest %q, oldest %q", got[0].Message, got[Keep-1].Message)
	}
	for j := 1; j < len(got); j++ {
		if !got[j].Time.Before(got[j-1].Time) {
			t.Fatalf("not newest first at %d", j)
		}
	}
	var nilLog *Log
	nilLog.Add(Reload, "dropped")
	if nilLog.List() != nil {
		t.Fatal("a nil log lists events")
	}
}
