package sip

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// startBaresip runs baresip as an auto-answering far end on 127.0.0.1:port that plays a 440 Hz
// tone and records what it hears; it returns once baresip is ready. Cleanup stops it.
func startBaresip(t *testing.T, port int) string {
	t.Helper()
	bin, err := exec.LookPath("baresip")
	if err != nil {
		if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
			t.Fatalf("baresip not installed and SWITCHBOARD_REQUIRE_PEERS is set: %v", err)
		}
		t.Skip("baresip not installed (apt-get install baresip)")
	}
	dir := t.TempDir()
	rtp := testport.FreeUDP(t) &^ 1
	cfg := fmt.Sprintf(`poll_method epoll
sip_listen 127.0.0.1:%d
net_interface 127.0.0.1
audio_player aufile,%s
audio_source aufile,%s
audio_alert aufile,%s
audio_srate 8000
audio_channels 1
rtp_ports %d-%d
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module_app account.so
module_app menu.so
`, port, filepath.Join(dir, "heard.wav"), filepath.Join(dir, "tone16.wav"), filepath.Join(dir, "alert.wav"), rtp, rtp+20)
	writePCM16WAV(t, filepath.Join(dir, "tone16.wav"), 20)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	acc := fmt.Sprintf("<sip:desk@127.0.0.1:%d>;regint=0;answermode=auto;audio_codecs=PCMU\n", port)
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(acc), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, bin, "-4", "-f", dir, "-t", "45")
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var log strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "baresip is ready") {
				once = true
				close(ready)
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-logDone
		_ = cmd.Wait()
		cancel()
		if t.Failed() {
			t.Logf("baresip output:\n%s", tail(log.String(), 3000))
		}
	})
	select {
	case <-ready:
	case <-logDone:
		t.Fatalf("baresip exited before ready:\n%s", log.String())
	case <-time.After(15 * time.Second):
		t.Fatal("baresip not ready within 15 s")
	}
	return dir
}

// TestBaresipBridgedCall: a second real user agent as the far end. SIPp calls the line,
// baresip auto-answers; RTP flows both ways through the bridge, and the carrier's BYE ends the
// baresip leg too.
func TestBaresipBridgedCall(t *testing.T) {
	requireSipp(t)
	port := testport.FreeUDP(t)
	startBaresip(t, port)
	dir := t.TempDir()
	writeULawWAV(t, filepath.Join(dir, "tone.wav"), 2)
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: BridgeTo(fmt.Sprintf("sip:desk@127.0.0.1:%d", port))}}
	})
	b := &bridgeSetup{g: g, dir: dir}
	b.carrier(t, "uac_rtp.xml").wait(t)
	evs := g.sink.waitEnded(t, 20*time.Second)
	if end := lastOf(evs, callevent.EventEnded); end.Outcome != callevent.OutcomeAnswered || end.TalkTime < 2 {
		t.Errorf("call.ended = %s %+v", end.Outcome, end.Durations)
	}
	sum := b.summary(t)
	if sum.Carrier.PacketsReceived < 50 || sum.Carrier.PacketsSent < 50 {
		t.Errorf("carrier leg RTP rx %d tx %d", sum.Carrier.PacketsReceived, sum.Carrier.PacketsSent)
	}
	if len(sum.Outbound) != 1 || sum.Outbound[0].PacketsReceived < 50 || sum.Outbound[0].PacketsSent < 50 {
		t.Errorf("baresip leg RTP %+v", sum.Outbound)
	}
}

// writePCM16WAV writes secs seconds of a 440 Hz tone as 16-bit PCM at 8 kHz (baresip's aufile).
func writePCM16WAV(t *testing.T, path string, secs int) {
	t.Helper()
	n := 8000 * secs
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(36+2*n))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(8000), uint32(16000), uint16(2), uint16(16)} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(2*n))
	for i := 0; i < n; i++ {
		binary.Write(&b, binary.LittleEndian, int16(8000*math.Sin(2*math.Pi*440*float64(i)/8000)))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
