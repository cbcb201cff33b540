package ivr

import "time"

// TimeRange is a daily opening interval [Start, End) as offsets from local midnight.
type TimeRange struct {
	Start, End time.Duration
}

// Date is a calendar day in the line's time zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// Hours are a line's opening hours: a weekly schedule and holidays in a time zone. Outside
// them the call goes to Closed (after the "closed" prompt, when ClosedPrompt names one).
type Hours struct {
	// Location is the time zone the schedule is written in (nil: UTC).
	Location *time.Location
	// Weekly holds the opening intervals per weekday, indexed by time.Weekday (Sunday = 0).
	// A day without intervals is closed.
	Weekly [7][]TimeRange
	// Holidays are closed all day.
	Holidays []Date
	// Closed is where calls go outside opening hours (zero value: voicemail).
	Closed Target
	// ClosedPrompt is played before Closed (default "closed"; "-" plays nothing).
	ClosedPrompt string
}

// Open reports whether t falls within opening hours: not a holiday and inside an interval of
// its weekday, both read on the wall clock of Location (so that 09:00 stays 09:00 across a
// daylight-saving change).
func (h *Hours) Open(t time.Time) bool {
	loc := h.Location
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	y, m, d := t.Date()
	for _, hd := range h.Holidays {
		if hd == (Date{y, m, d}) {
			return false
		}
	}
	since := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
		time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond())
	for _, r := range h.Weekly[t.Weekday()] {
		if since >= r.Start && since < r.End {
			return true
		}
	}
	return false
}
