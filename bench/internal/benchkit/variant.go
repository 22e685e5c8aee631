package benchkit

import (
	"fmt"
	"strings"
)

// Variant is one more Switchyard target in a bench run: a build, or a
// wrapper script that sets the environment and execs a build.
type Variant struct{ Name, Binary string }

// Variants is a repeatable -variant name=binary flag.
type Variants []Variant

func (v *Variants) String() string { return fmt.Sprint(*v) }

// Set adds one name=binary.
func (v *Variants) Set(s string) error {
	name, bin, ok := strings.Cut(s, "=")
	if !ok || name == "" || bin == "" {
		return fmt.Errorf("want name=binary, got %q", s)
	}
	*v = append(*v, Variant{name, bin})
	return nil
}
