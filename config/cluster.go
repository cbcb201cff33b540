package config

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/switchboard-voice/switchboard/sip"
)

// Cluster configures the internal SIP leg between the nodes of a cluster: how a call waiting
// on one node is answered by an agent attached to another (docs/OPERATIONS.md, "Cluster").
// Zero (no secret) is off: offers to agents on other nodes then fail at once.
type Cluster struct {
	// Secret is the cluster secret every node shares (at least 32 characters): internal
	// INVITEs carry an HMAC-SHA256 under it. The SWITCHBOARD_CLUSTER_SECRET environment
	// variable overrides it. Never logged.
	Secret string `yaml:"secret"`
	// InternalNetworks are the networks the nodes reach each other on: an internal INVITE
	// from anywhere else is refused (403, security event internal_refused). Required with
	// Secret.
	InternalNetworks []Prefix `yaml:"internal_networks"`
	// InternalAddress is where the other nodes send this node's internal INVITEs: the IP
	// address and port of this node's SIP UDP listener as seen from the internal network.
	// Recorded in the database at start. Required with Secret.
	InternalAddress string `yaml:"internal_address"`
	// MaxSkew is how far an internal INVITE's timestamp may be from this node's clock
	// (default 30s): keep the nodes' clocks in step (NTP).
	MaxSkew Duration `yaml:"max_skew"`
}

// MinClusterSecret is the shortest cluster secret accepted.
const MinClusterSecret = 32

// DefaultClusterMaxSkew is cluster.max_skew's default (sip's).
const DefaultClusterMaxSkew = sip.DefaultClusterMaxSkew

// On reports whether the internal leg is on (a secret is set).
func (c Cluster) On() bool { return c.Secret != "" }

func (c *Config) validateCluster(k *checker) {
	cl := &c.Cluster
	if !cl.On() {
		if len(cl.InternalNetworks) > 0 || cl.InternalAddress != "" {
			k.add("cluster.secret", "is required when cluster.internal_networks or cluster.internal_address is set: the nodes authenticate their internal INVITEs with it")
		}
		return
	}
	if len(cl.Secret) < MinClusterSecret {
		// The secret itself is never repeated in a message.
		k.add("cluster.secret", "is %d characters long; use at least %d random characters (e.g. openssl rand -hex 32), the same on every node", len(cl.Secret), MinClusterSecret)
	}
	if len(cl.InternalNetworks) == 0 {
		k.add("cluster.internal_networks", "is required with cluster.secret: list the networks the nodes reach each other on, e.g. [10.0.0.0/24]")
	}
	if cl.InternalAddress == "" {
		k.add("cluster.internal_address", "is required with cluster.secret: the IP:port where the other nodes reach this node's SIP UDP listener, e.g. 10.0.0.11:5060")
	} else if host, port, err := net.SplitHostPort(cl.InternalAddress); err != nil {
		k.add("cluster.internal_address", "%q is not IP:port, e.g. 10.0.0.11:5060", cl.InternalAddress)
	} else {
		a, aerr := netip.ParseAddr(host)
		if aerr != nil || a.IsUnspecified() {
			k.add("cluster.internal_address", "%q must have this node's IP address as the other nodes reach it (no host name, no wildcard)", cl.InternalAddress)
		} else if len(cl.InternalNetworks) > 0 && !inPrefixes(a, cl.InternalNetworks) {
			k.add("cluster.internal_address", "%q is outside cluster.internal_networks: the other nodes would refuse this node's internal INVITEs", cl.InternalAddress)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			k.add("cluster.internal_address", "%q has port %q; a port is a number from 1 to 65535", cl.InternalAddress, port)
		}
	}
	if cl.MaxSkew <= 0 {
		k.add("cluster.max_skew", "must be positive, e.g. 30s; got %s", cl.MaxSkew)
	}
}

func inPrefixes(a netip.Addr, ps []Prefix) bool {
	for _, p := range ps {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}
