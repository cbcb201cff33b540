package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
)

// testClusterSecret is the cluster secret of the internal-leg tests.
const testClusterSecret = "e2e-cluster-secret-0123456789abcdef0123"

// signedOffer is what another node of the cluster sends for an offer to agentID: the
// X-Switchboard-Offer value and its signature over the Call-ID (sip/internal_leg.go's format,
// written out here as the other node's code would).
func signedOffer(secret, sipCallID string, agentID int64, at time.Time) (offer, sig string) {
	v := url.Values{}
	v.Set("v", "1")
	v.Set("node", "node-a")
	v.Set("ts", strconv.FormatInt(at.Unix(), 10))
	v.Set("call", "0e7c6d1a-6f5e-4d1b-9a2c-3b4d5e6f7a8b")
	v.Set("agent", strconv.FormatInt(agentID, 10))
	v.Set("queue", "support")
	v.Set("from", "+15551234567")
	v.Set("line", "+15550199")
	offer = v.Encode()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("switchboard-internal-offer-v1\n" + sipCallID + "\n" + offer))
	return offer, hex.EncodeToString(mac.Sum(nil))
}

// TestEndToEnd_InternalLegFromAnotherNodeRingsTheAgentsPhoneHere is the agent's node of the
// cluster's internal leg through the real binary, configured with `cluster` (secret, internal
// network 127.0.0.1/32): agent1's SIP phone (SIPp) registers with it; SIPp plays the call's
// node and sends a signed internal INVITE offering a call to agent1; the gateway rings the
// registered phone, answers the internal INVITE once the phone answered (200 naming channel
// sip), bridges, and when the agent hangs up sends the call's node a BYE. It emits nothing for
// the internal leg: no call record appears. The same INVITE from 127.0.0.2 (outside the internal
// network), or with a wrong secret, gets 403 and counts internal_refused on /metrics. Before,
// the gateway took the internal INVITE for a carrier call to a line "agent-N" (404).
func TestEndToEnd_InternalLegFromAnotherNodeRingsTheAgentsPhoneHere(t *testing.T) {
	requireSipp(t)
	edits := append([][2]string{{"lines:\n", "cluster:\n  secret: " + testClusterSecret +
		"\n  internal_networks: [127.0.0.1/32]\n  internal_address: 127.0.0.1:5999\nlines:\n"}}, agentConfigEdits...)
	g := runEditedGateway(t, func(int) [][2]string { return edits })
	const agent, pass = "agent1@example.com", "agentpass"
	agentID := int64(g.agentByEmail(agent)["id"].(float64))
	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "TALK_MS": "2000"}
	phone := startSipp(t, "agent_answer.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo")
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", agent, "-ap", pass,
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")

	gw := fmt.Sprintf("127.0.0.1:%d", g.sipPort)
	send := func(scenario, callID, secret, src string, at time.Time) *sippRun {
		offer, sig := signedOffer(secret, callID, agentID, at)
		// -cid_str: SIPp's Call-ID is the one signed (SIPp matches responses by it).
		return startSipp(t, scenario, map[string]string{"AGENT_ID": strconv.FormatInt(agentID, 10),
			"OFFER_VALUE": offer, "SIGNATURE_VALUE": sig}, "-cid_str", callID, "-i", src, gw)
	}
	// Refused first: from outside the internal network (signed right), with a wrong secret,
	// with a stale timestamp.
	send("node_internal_forged.xml", "forged-source@node-a", testClusterSecret, "127.0.0.2", time.Now()).wait(t, "INVITE from outside the internal network")
	send("node_internal_forged.xml", "forged-secret@node-a", "not-the-cluster-secret-0123456789abcdef", "127.0.0.1", time.Now()).wait(t, "INVITE with a wrong secret")
	send("node_internal_forged.xml", "forged-stale@node-a", testClusterSecret, "127.0.0.1", time.Now().Add(-5*time.Minute)).wait(t, "stale INVITE")
	if v := g.metric(`switchboard_security_events_total{type="internal_refused"`); v != 3 {
		t.Errorf("internal_refused = %v, want 3", v)
	}

	// The real one: the phone rings, answers, talks 2 s and hangs up; the node gets a BYE.
	send("node_internal_invite.xml", "internal-1@node-a", testClusterSecret, "127.0.0.1", time.Now()).wait(t, "the call's node")
	phone.wait(t, "agent phone")
	if v := g.metric(`switchboard_cluster_offers_total{direction="received",result="answered"`); v != 1 {
		t.Errorf("cluster offers received answered = %v, want 1", v)
	}
	if v := g.metric(`switchboard_rtp_packets_total{direction="rx"`); v < 50 {
		t.Errorf("RTP received %v packets, want the call's node's and the phone's audio", v)
	}
	if code, m := g.api("GET", "/calls", ""); code != 200 || len(m["calls"].([]any)) != 0 {
		t.Errorf("GET /calls = %d %v: the agent's node made a call record of the internal leg", code, m)
	}
}
