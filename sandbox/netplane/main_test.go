package netplane

import (
	"os"
	"testing"

	"github.com/mesolite/mesolite/sandbox/netplane/netplanetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if !netplanetest.IsChild() {
		netplanetest.RemoveClientImage()
	}
	os.Exit(code)
}
