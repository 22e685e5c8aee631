package proxy_test

import (
	"net"
	"strings"
	"testing"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// A SCRAM client that sends the channel-binding flag 'y' gets a server
// connection without TLS whatever its own transport: the fallback must
// not depend on the client using TLS. And when the re-opened plaintext
// connection is refused by the server (a role allowed only over TLS),
// the client gets the server's own error, not 08006.
func TestSCRAMChannelBindingFlagFromPlainClient(t *testing.T) {
	needPG(t)
	p := startProxy(t, setup{extra: "[tls]\nclient_mode = \"disable\"\nserver_mode = \"prefer\"\n"})
	for _, tc := range []struct {
		user     string
		flag     byte
		wantCode string // "" for a login
		wantMsg  string
	}{
		{testbed.UserSCRAM, 'n', "", ""},
		{testbed.UserSCRAM, 'y', "", ""},
		{testbed.UserTLSOnly, 'n', "", ""}, // the first server connection has TLS
		{testbed.UserTLSOnly, 'y', "28000", "no encryption"},
	} {
		c, err := net.Dial("tcp", p.addr("rw"))
		if err != nil {
			t.Fatal(err)
		}
		e, err := scramLogin(c, tc.user, testbed.Password, tc.flag)
		c.Close()
		switch {
		case err != nil:
			t.Errorf("%s with flag %c: %v", tc.user, tc.flag, err)
		case tc.wantCode == "" && e != nil:
			t.Errorf("%s with flag %c: refused: %s %s", tc.user, tc.flag, e.Code, e.Message)
		case tc.wantCode != "" && (e == nil || e.Code != tc.wantCode || !strings.Contains(e.Message, tc.wantMsg)):
			t.Errorf("%s with flag %c: got %+v, want the server's %s containing %q", tc.user, tc.flag, e, tc.wantCode, tc.wantMsg)
		}
	}
}
