package auth

import "fmt"

// Method is how the proxy authenticates a client: pgbouncer's auth_type.
type Method uint8

const (
	MethodSCRAM Method = iota + 1 // "scram-sha-256"
	MethodMD5                     // "md5": SCRAM for users with a SCRAM secret
	MethodPlain                   // "plain": cleartext password over the wire
	MethodTrust                   // "trust": no password; the user must exist
)

var methodNames = map[Method]string{
	MethodSCRAM: "scram-sha-256",
	MethodMD5:   "md5",
	MethodPlain: "plain",
	MethodTrust: "trust",
}

// ParseMethod parses a pgbouncer auth_type name.
func ParseMethod(s string) (Method, error) {
	for m, name := range methodNames {
		if s == name {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown auth_type %q (want scram-sha-256, md5, plain or trust)", s)
}

func (m Method) String() string {
	if s, ok := methodNames[m]; ok {
		return s
	}
	return fmt.Sprintf("Method(%d)", uint8(m))
}
