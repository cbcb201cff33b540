package recordings

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// retentionBatch bounds one pass's rows so that a large backlog is deleted in steps.
const retentionBatch = 500

// Retention deletes, for good and as the system (deleted_by null), every ready or failed
// recording created more than days days ago — file first, then metadata, as Delete — and then
// calls Options.OnExpired with their ids so that their comments show deleted_at. days ≤ 0 keeps
// everything (config recordings.retention_days 0). It returns how many it deleted.
func (s *Service) Retention(ctx context.Context, days int) (int, error) {
	if days <= 0 {
		return 0, nil
	}
	now := s.now()
	before := now.Add(-time.Duration(days) * 24 * time.Hour)
	total := 0
	for {
		rows, err := s.query(ctx, `SELECT `+recordingColumns+` FROM recordings
			WHERE state IN ('ready', 'failed') AND created_at < $1 ORDER BY created_at, id LIMIT $2`, before, retentionBatch)
		if err != nil {
			return total, fmt.Errorf("recordings: retention: %w", err)
		}
		var ids []string
		for _, r := range rows {
			ok, err := s.Delete(ctx, r.ID, 0, now)
			if err != nil {
				return total, fmt.Errorf("recordings: retention: %w", err)
			}
			if ok {
				ids = append(ids, r.ID)
			}
		}
		total += len(ids)
		if len(ids) > 0 && s.opts.OnExpired != nil {
			if err := s.opts.OnExpired(ctx, ids, now.UTC()); err != nil {
				return total, fmt.Errorf("recordings: retention: mark comments: %w", err)
			}
		}
		if len(rows) < retentionBatch {
			return total, nil
		}
	}
}

// RunRetention applies Retention(ctx, days) now and then every interval until ctx ends; errors
// go to report (may be nil) and the loop goes on. It returns when ctx is done.
func (s *Service) RunRetention(ctx context.Context, days int, interval time.Duration, report func(error)) {
	if days <= 0 {
		return
	}
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Retention(ctx, days); err != nil && report != nil && !errors.Is(err, context.Canceled) {
			report(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
