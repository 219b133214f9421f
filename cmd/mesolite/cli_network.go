package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/sandbox/netplane"
)

// vipEntry is one VIP of GET /mesolite/v1/vips.
type vipEntry struct {
	AppID    string `json:"appId"`
	Path     string `json:"path"`
	Label    string `json:"label"`
	Address  string `json:"address"`
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
	Served   bool   `json:"served"`
	Reason   string `json:"reason"`
	Backends []struct {
		TaskID  string `json:"taskId"`
		Address string `json:"address"`
		State   string `json:"state"`
		InRules bool   `json:"inRules"`
	} `json:"backends"`
}

var vipColumns = []column{
	{"APP", alignLeft}, {"LABEL", alignLeft}, {"ADDRESS", alignLeft}, {"NAME", alignLeft},
	{"SERVED", alignLeft}, {"BACKENDS", alignLeft},
}

func vipList(ctx context.Context, c *cli, inv *invocation) error {
	var q url.Values
	if len(inv.args) == 1 {
		q = url.Values{"app": {canonicalAppID(inv.args[0])}}
	}
	var body struct {
		VIPs []json.RawMessage `json:"vips"`
	}
	if err := c.api.getJSON(ctx, "/mesolite/v1/vips", q, &body); err != nil {
		return err
	}
	if inv.flag("json") {
		if body.VIPs == nil {
			body.VIPs = []json.RawMessage{}
		}
		return writeJSONValue(c.stdout, body.VIPs)
	}
	var rows [][]string
	for _, raw := range body.VIPs {
		var v vipEntry
		if err := decodeAnswer(raw, "/mesolite/v1/vips", &v); err != nil {
			return err
		}
		rows = append(rows, vipRow(&v))
	}
	writeTable(c.stdout, vipColumns, rows)
	return nil
}

func vipRow(v *vipEntry) []string {
	addr, name, served := "---", v.Name, "yes"
	if v.Address != "" {
		addr = fmt.Sprintf("%s:%d/%s", v.Address, v.Port, v.Protocol)
	}
	if name == "" {
		name = "---"
	}
	if !v.Served {
		served = "no: " + strings.TrimPrefix(v.Reason, "not served: ")
	} else if v.Reason != "" {
		served = "yes (" + v.Reason + ")"
	}
	var bs []string
	for _, b := range v.Backends {
		a := b.Address
		if a == "" {
			a = "(no address)"
		}
		bs = append(bs, fmt.Sprintf("%s %s", a, b.State))
	}
	backends := "---"
	if len(bs) > 0 {
		backends = strings.Join(bs, ", ")
	}
	return []string{v.AppID, v.Path[strings.LastIndexByte(v.Path, '/')+1:] + "=" + v.Label, addr, name, served, backends}
}

// canonicalAppID puts the leading slash an app id may lack.
func canonicalAppID(id string) string {
	if !strings.HasPrefix(id, "/") {
		return "/" + id
	}
	return id
}

// dnsLookup asks the agent's DNS server itself, where tasks ask, so the
// answer is the one a task gets.
func dnsLookup(ctx context.Context, c *cli, inv *invocation) error {
	qtype := dns.TypeA
	if len(inv.args) == 2 {
		t, ok := dns.StringToType[strings.ToUpper(inv.args[1])]
		if !ok {
			return usagef(inv.cmd, "unknown record type %q: use A, SRV or ANY", inv.args[1])
		}
		qtype = t
	}
	var status struct {
		Network struct {
			Mode      string `json:"mode"`
			Off       string `json:"off"`
			DNSListen string `json:"dnsListen"`
		} `json:"network"`
	}
	if err := c.api.getJSON(ctx, "/mesolite/v1/status", nil, &status); err != nil {
		return err
	}
	if status.Network.DNSListen == "" {
		why := status.Network.Off
		if why == "" {
			why = "[network] dns = false"
		}
		return fmt.Errorf("mesolite's DNS server is off: %s", why)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(inv.args[0]), qtype)
	m.RecursionDesired = true
	cl := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	r, _, err := cl.ExchangeContext(ctx, m, status.Network.DNSListen)
	if err == nil && r.Truncated {
		cl.Net = "tcp"
		r, _, err = cl.ExchangeContext(ctx, m, status.Network.DNSListen)
	}
	if err != nil {
		return fmt.Errorf("ask mesolite's DNS server at %s: %w", status.Network.DNSListen, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("%s: %s", strings.TrimSuffix(m.Question[0].Name, "."), dns.RcodeToString[r.Rcode])
	}
	if len(r.Answer) == 0 {
		return fmt.Errorf("%s: no %s record", strings.TrimSuffix(m.Question[0].Name, "."), dns.TypeToString[qtype])
	}
	for _, rr := range r.Answer {
		fmt.Fprintln(c.stdout, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return nil
}

// networkCleanup removes the table and the helper of the configured
// [network] section; it needs the same rights as the agent.
func networkCleanup(ctx context.Context, c *cli, inv *invocation) error {
	path, _ := inv.value("config") // none: the built-in defaults, as the agent's
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Network.Mode == "off" {
		cfg.Network.Mode = "auto" // clean up what an earlier configuration made
	}
	log := zerolog.New(c.stderr).Level(zerolog.WarnLevel)
	_, plane := openNetwork(ctx, cfg, log)
	if plane == nil {
		return errors.New("networking cannot be set up here, so there is nothing of it to remove (see the warning above)")
	}
	defer plane.Close()
	if err := plane.Cleanup(ctx); err != nil {
		return err
	}
	what := "nftables table " + plane.Table()
	if plane.Mode() == netplane.ModeHelper {
		what += " and helper container " + plane.HelperName()
	}
	fmt.Fprintf(c.stdout, "removed %s\n", what)
	return nil
}
