package main

import (
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/mesolite/mesolite/internal/conformance"
	"github.com/mesolite/mesolite/sandbox/netplane/netplanetest"
)

// Every answer and event the tests of this package receive from an agent
// is checked against Marathon's schema (internal/conformance), and a
// mismatch fails the test that made the request. In-process agents
// (startCLIAgent) are checked on the server side; agent processes
// (startAgent) on the client side: every client of the tests (the CLI's
// own, run in process, http.DefaultClient and the tests' own clients) goes
// through hostChecked, which checks what comes from a registered agent's
// address. http.DefaultTransport stays as it is (packages clone it).

// baseTransport is http.DefaultTransport as it was.
var baseTransport = http.DefaultTransport

// checkedHosts maps an agent's host:port to the checking transport of the
// test that started it.
var checkedHosts sync.Map

type hostChecked struct{}

func (hostChecked) RoundTrip(r *http.Request) (*http.Response, error) {
	if rt, ok := checkedHosts.Load(r.URL.Host); ok {
		return rt.(http.RoundTripper).RoundTrip(r)
	}
	return baseTransport.RoundTrip(r)
}

// checkTraffic checks, until t ends, every answer from the agent at host.
func checkTraffic(t *testing.T, host string) {
	checkedHosts.Store(host, conformance.Default().Transport(baseTransport, conformance.Reporter(t)))
	t.Cleanup(func() { checkedHosts.Delete(host) })
}

// TestMain checks the tests' traffic, reports the count, and removes the
// test image the network tests imported.
func TestMain(m *testing.M) {
	http.DefaultClient.Transport = hostChecked{}
	clientTransport = hostChecked{}
	before := helperContainers()
	code := m.Run()
	removeLeftHelpers(before)
	conformance.Default().Finish("cmd/mesolite")
	netplanetest.RemoveClientImage()
	os.Exit(code)
}
