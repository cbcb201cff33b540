package config

import (
	"errors"
	"reflect"
	"testing"
)

// Rule (issue 21, firewalls): the webrtc keys are checked with their YAML path — port range
// (in 1024–65535, ordered, clear of the RTP range whose legs would take the port), the ICE-TCP
// port, and each ICE server (stun:/stuns:/turn:/turns: URIs; TURN needs its credentials); a
// good section parses into what cmd hands media and the page.
func TestWebRTCKeysAreValidatedWithTheirPath(t *testing.T) {
	cases := []problemCase{
		{"port range inverted", "webrtc: {port_min: 40010, port_max: 40000}\n", []Problem{
			{"webrtc.port_max", "must be at least webrtc.port_min (40010), got 40000", 2}}},
		{"port range out of bounds", "webrtc: {port_min: 80, port_max: 70000}\n", []Problem{
			{"webrtc.port_min", "must be from 1024 to 65535 (or both port_min and port_max 0: any free port), got 80", 2},
			{"webrtc.port_max", "must be from 1024 to 65535 (or both port_min and port_max 0: any free port), got 70000", 2}}},
		{"port range overlaps RTP", "rtp: {port_min: 20000, port_max: 20999}\nwebrtc: {port_min: 20500, port_max: 20500}\n", []Problem{
			{"webrtc.port_min", "the range 20500-20500 overlaps rtp.port_min-rtp.port_max (20000-20999): the call legs' RTP would take the ICE port", 3}}},
		{"tcp port", "webrtc: {tcp_port: 99999}\n", []Problem{
			{"webrtc.tcp_port", "must be from 1024 to 65535, or 0 for no ICE over TCP, got 99999", 2}}},
		{"ice servers", "webrtc:\n  ice_servers:\n    - {urls: []}\n    - {urls: [\"http://x\", \"turn:\"]}\n    - {urls: [\"turns:turn.example.com:443?transport=tcp\"], username: u}\n", []Problem{
			{"webrtc.ice_servers[0].urls", "needs at least one stun:, stuns:, turn: or turns: URI", 4},
			{"webrtc.ice_servers[1].urls[0]", `"http://x" must start with stun:, stuns:, turn: or turns: (RFC 7064, RFC 7065)`, 5},
			{"webrtc.ice_servers[1].urls[1]", `"turn:" needs a host and no spaces, e.g. turn:turn.example.com:3478?transport=tcp`, 5},
			{"webrtc.ice_servers[1]", "a TURN server needs username and credential", 5},
			{"webrtc.ice_servers[2]", "a TURN server needs username and credential", 6}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse([]byte(base+tc.yaml), noEnv)
			var got Problems
			if !errors.As(err, &got) {
				t.Fatalf("parse: got error %v (%T), want Problems", err, err)
			}
			if !reflect.DeepEqual([]Problem(got), tc.want) {
				t.Errorf("problems:\n got: %s\nwant: %s", fmtProblems(got), fmtProblems(tc.want))
			}
		})
	}
	c, err := parse([]byte(base+"webrtc:\n  port_min: 40000\n  port_max: 40009\n  tcp_port: 40443\n  ice_servers:\n    - {urls: [\"turn:turn.example.com:3478?transport=tcp\"], username: agent, credential: s3cret}\n"), noEnv)
	if err != nil {
		t.Fatalf("a good webrtc section: %v", err)
	}
	w := c.WebRTC
	if w.PortMin != 40000 || w.PortMax != 40009 || w.TCPPort != 40443 || len(w.ICEServers) != 1 || w.ICEServers[0].Credential != "s3cret" {
		t.Fatalf("parsed %+v", w)
	}
}
