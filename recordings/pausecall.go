package recordings

import (
	"context"
	"fmt"
)

// PauseCall pauses (pause true) or resumes the recording of the live call callID on this node
// — the agent page's Pause recording button, for a card number read aloud: the paused time is
// silence in the file and the interval, with who paused and resumed, is in the recording's
// pauses (Writer.Pause). by is the user id. It returns an error wrapping ErrNotFound when this
// node records no such call (not recorded, already finished, or recorded by another node).
func (s *Service) PauseCall(ctx context.Context, callID string, by int64, pause bool) error {
	s.mu.Lock()
	var ws []*Writer
	for _, w := range s.active {
		if w.callID == callID && w.kind == kindCall {
			ws = append(ws, w)
		}
	}
	s.mu.Unlock()
	if len(ws) == 0 {
		return fmt.Errorf("recordings: pause call %s: %w", callID, ErrNotFound)
	}
	for _, w := range ws { // no lock held: Pause takes the writer's own
		var err error
		if pause {
			err = w.Pause(ctx, by)
		} else {
			err = w.Resume(ctx, by)
		}
		if err != nil {
			return fmt.Errorf("recordings: pause call %s: %w", callID, err)
		}
	}
	return nil
}
