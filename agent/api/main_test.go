package api_test

import (
	"os"
	"testing"

	"github.com/mesolite/mesolite/internal/conformance"
)

// TestMain runs the tests and prints how many answers and events the
// conformance check saw: every test server of this package checks its
// traffic against Marathon's schema (see newEnv).
func TestMain(m *testing.M) {
	code := m.Run()
	conformance.Default().Finish("agent/api")
	os.Exit(code)
}
