package ticketing_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// BenchmarkResolveCaller measures caller resolution (ResolveCaller) on a real PostgreSQL:
// "known" is a call from a direct line among 1000 users with a shared holder (PM-1/PM-7, one
// read transaction); "new" is a call from a number nobody has (PM-2: a user and an identity
// written and committed).
func BenchmarkResolveCaller(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	for i := range 1000 {
		u, err := e.store.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: fmt.Sprint("B", i), Phone: fmt.Sprintf("+1646555%04d", i)})
		if err != nil {
			b.Fatal(err)
		}
		if i == 1 {
			if _, err := e.store.AddIdentity(ctx, ticketing.SystemActor, u.ID, "+16465550000"); err != nil {
				b.Fatal(err)
			}
		}
	}
	st, err := e.store.Settings(ctx)
	if err != nil {
		b.Fatal(err)
	}
	opts := ticketing.ResolveOptions{Settings: &st}
	b.Run("known", func(b *testing.B) {
		for b.Loop() {
			r, err := e.store.ResolveCaller(ctx, "+16465550000", opts)
			if err != nil || len(r.Candidates) != 2 {
				b.Fatalf("%+v %v", r, err)
			}
		}
	})
	i := 0 // shared by every run of "new": each number is new once
	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			i++
			r, err := e.store.ResolveCaller(ctx, fmt.Sprintf("+1718%07d", i), opts)
			if err != nil || !r.Created {
				b.Fatalf("%+v %v", r, err)
			}
		}
	})
	b.Run("known-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := e.store.ResolveCaller(ctx, "+16465550000", opts); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkCreateTicket measures ticket creation: "store" is CreateTicket with a first comment
// (the events engine's path), "voice" adds the voice comment of the call, "http" is
// POST /api/v2/tickets with a Bearer token over loopback.
func BenchmarkCreateTicket(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	u, err := e.store.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Bench", Phone: "+16465559999"})
	if err != nil {
		b.Fatal(err)
	}
	agent := e.agent.ID
	b.Run("store", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.store.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{
				Subject: "Call", RequesterID: u.ID, AssigneeID: &agent, OriginPhone: "+16465559999",
				Via: ticketing.Via{Channel: ticketing.ChannelVoice, Source: "inbound"}, Comment: &ticketing.NewComment{Body: "call data"},
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("voice", func(b *testing.B) {
		for b.Loop() {
			t, err := e.store.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{
				Subject: "Call", RequesterID: u.ID, OriginPhone: "+16465559999", Via: ticketing.Via{Channel: ticketing.ChannelVoice, Source: "inbound"},
			})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.store.AppendVoiceComment(ctx, t.ID, ticketing.VoiceComment{CallID: "c", From: "+16465559999", To: "+15550100"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("http", func(b *testing.B) {
		body := map[string]any{"ticket": map[string]any{"subject": "s", "requester_id": u.ID, "comment": map[string]any{"body": "x"}}}
		for b.Loop() {
			if r := e.call(e.asAgent(), "POST", "/tickets", body); r.Status != http.StatusCreated {
				b.Fatalf("%d %s", r.Status, r.Raw)
			}
		}
	})
}
