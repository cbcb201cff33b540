package main

import (
	"fmt"
	"strings"
	"testing"
)

// dtmfKeys is a SIPp action list pressing keys (RFC 4733, SIPp's captures) one after another,
// after the IVR's greeting started. Each capture carries its own RTP timestamp and the captures'
// sequence numbers rise in the order 1-9, star, pound: keys must come in that order (the
// gateway takes a repeated timestamp for a retransmitted key, RFC 4733 §2.5.1.2).
func dtmfKeys(keys ...string) string {
	var b strings.Builder
	b.WriteString(`<pause milliseconds="1500"/>`)
	for _, k := range keys {
		fmt.Fprintf(&b, `<nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_%s.pcap"/></action></nop><pause milliseconds="500"/>`, k)
	}
	return b.String()
}

// Rule CF-4 through the real binary: a caller presses 5 in the main menu, reaches a collect
// step and types 6789# (RFC 4733 from SIPp); the digits travel as the call's custom data and
// custom_data_fields writes them into the ticket's field account_number (GET /tickets/{id}),
// while the mapped key the call did not carry (order) leaves its field unset with a private
// note naming it.
func TestRule_CF4_IVRCollectedDigitsReachTheTicketField(t *testing.T) {
	requireSipp(t)
	g := runEditedGateway(t, func(int) [][2]string {
		return [][2]string{
			{`options: {"1": "queue:support", "9": voicemail}`, `options: {"1": "queue:support", "5": "ivr:account", "9": voicemail}`},
			{"queues:\n", `  account:
    collect: {variable: account, min_digits: 4, max_digits: 8, pattern: "[0-9]+", next: voicemail}
queues:
`},
			{"users:\n", `ticketing:
  settings:
    custom_data_fields:
      - {key: account, field: account_number, type: digits}
      - {key: order, field: order_number, type: digits}
voicemail: {max_length: 3s}
users:
`},
		}
	})
	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": dtmfKeys("5", "6", "7", "8", "9", "pound")},
		"-s", "+15550100", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	carrier.wait(t, "carrier")
	call := g.awaitCall("+15550100", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["menu_path"] != "main>5>account" || call["outcome"] != "voicemail" {
		t.Errorf("call %v: want menu path main>5>account, outcome voicemail", call)
	}
	tk, comments := g.ticketOf(call)
	fields, _ := tk["fields"].(map[string]any)
	if fields["account_number"] != "6789" {
		t.Errorf("ticket fields %v: want account_number 6789 (the digits the caller typed)", tk["fields"])
	}
	if _, ok := fields["order_number"]; ok {
		t.Errorf("ticket fields %v: order_number must stay unset (the call had no order)", tk["fields"])
	}
	var note, standard bool
	for _, c := range comments {
		cm := c.(map[string]any)
		body, _ := cm["body"].(string)
		if cm["public"] == false && strings.Contains(body, "custom data not written") && strings.Contains(body, `order_number: no value; the call's data has no "order"`) {
			note = true
			if strings.Contains(body, "account_number") {
				t.Errorf("private note %q names account_number, which was written", body)
			}
		}
		standard = standard || cm["public"] == false && strings.Contains(body, "Custom data:\n  account: 6789")
	}
	if !note || !standard {
		t.Errorf("comments %v: want the private note naming order_number (%v) and the standard data listing account 6789 (%v)", comments, note, standard)
	}
}
