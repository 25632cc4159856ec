// CoreDNS for the test node with only the plugins the bed uses: the cluster's names from the kubernetes plugin, a
// fixed NXDOMAIN from template for everything else, and no forward plugin at all, so no query can leave the machine.
// Fewer plugins also keep the cold build to a fraction of a full CoreDNS (no cloud SDKs).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

// The same relative order as CoreDNS' own plugin.cfg; a directive not listed here cannot appear in a Corefile.
var directives = []string{"bind", "ready", "health", "errors", "log", "template", "kubernetes"}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
