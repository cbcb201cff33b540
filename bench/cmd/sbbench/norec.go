package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// runNoRecording measures recording's share: a gateway started afresh with recording off
// (bench/config.yaml.tmpl's recordings.enabled) runs one concurrency step at the gateway's
// best N, with its own idle baseline; then the gateway is started again as before, with
// recording on, for the steps that follow. Each gateway's log is kept
// (gateway-recording.log, gateway-norec.log, then gateway.log).
func (b *bench) runNoRecording(ctx context.Context) error {
	n := b.sameN()
	if n == 0 || !b.norec {
		return nil
	}
	ramp := time.Duration(n/b.concRate+1) * time.Second
	if !b.fits(2*ramp + b.settle + b.concMeasure + 3*time.Minute) {
		b.res.note("the recording-off step was skipped: the time budget")
		return nil
	}
	b.logf("recording off: a fresh gateway without recording, %d calls", n)
	if err := b.restartGateway(ctx, true, "gateway-recording.log"); err != nil {
		return err
	}
	base, err := b.idleBaseline(ctx)
	if err != nil {
		return err
	}
	st, err := b.concStep(ctx, 90, n, base)
	if err != nil {
		if b.gatewayAlive() != nil || ctx.Err() != nil {
			return err
		}
		st.Pass, st.Why = false, err.Error()
	}
	b.res.NoRec = &st
	b.logStep(st)
	return b.restartGateway(ctx, false, "gateway-norec.log")
}

// restartGateway stops the gateway, keeps its log as keepLog, and starts it again with
// recording off or on.
func (b *bench) restartGateway(ctx context.Context, noRecording bool, keepLog string) error {
	b.stopGateway()
	if err := os.Rename(filepath.Join(b.work, "gateway.log"), filepath.Join(b.work, keepLog)); err != nil {
		return fmt.Errorf("keep the gateway's log: %w", err)
	}
	b.noRecording = noRecording
	return b.startGateway(ctx)
}
