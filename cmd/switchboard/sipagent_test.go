package main

import (
	"testing"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/sip"
)

// TestSIPAgentCredentials: an agent's SIP phone authenticates with its own secret when one is
// configured — stored as HA1s (sip_secret_ha1, under sip_username only) or plain (sip_secret) —
// and the web password then no longer works for it; without one (the dev configuration) the
// email or its local part with the plain password still does, and a bcrypt-only agent cannot
// register.
func TestSIPAgentCredentials(t *testing.T) {
	md5ha1, _ := sip.HA1(sip.DigestMD5, "desk7", "switchboard", "s3cret")
	shaha1, _ := sip.HA1(sip.DigestSHA256, "desk7", "switchboard", "s3cret")
	cfg := &config.Config{Agents: []config.Agent{
		{Email: "agent1@example.com", Password: "agentpass"},
		{Email: "hashed@example.com", PasswordHash: "$2a$10$abcdefghijklmnopqrstuv"},
		{Email: "ha1@example.com", Password: "webpass", SIPUsername: "desk7", SIPSecretHA1: &config.SIPSecretHA1{MD5: md5ha1, SHA256: shaha1}},
		{Email: "plain@example.com", Password: "webpass", SIPSecret: "phonepass"},
	}}
	tel := &telephony{gw: &gateway{cfg: cfg}, agents: map[string]int64{
		"agent1@example.com": 1, "hashed@example.com": 2, "ha1@example.com": 3, "plain@example.com": 4}}
	cases := []struct {
		user string
		want sip.AgentAccount
		ok   bool
	}{
		{"agent1", sip.AgentAccount{ID: 1, Username: "agent1", Password: "agentpass"}, true},
		{"agent1@example.com", sip.AgentAccount{ID: 1, Username: "agent1@example.com", Password: "agentpass"}, true},
		{"hashed", sip.AgentAccount{}, false},
		{"desk7", sip.AgentAccount{ID: 3, Username: "desk7", HA1MD5: md5ha1, HA1SHA256: shaha1}, true},
		{"ha1@example.com", sip.AgentAccount{}, false}, // its own secret only, under sip_username
		{"ha1", sip.AgentAccount{}, false},
		{"plain@example.com", sip.AgentAccount{ID: 4, Username: "plain@example.com", Password: "phonepass"}, true},
		{"plain", sip.AgentAccount{}, false},
	}
	for _, c := range cases {
		got, ok := tel.sipAgent(c.user)
		if ok != c.ok || got != c.want {
			t.Errorf("sipAgent(%q) = %+v, %v; want %+v, %v", c.user, got, ok, c.want, c.ok)
		}
	}
}
