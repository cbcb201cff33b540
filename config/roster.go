package config

import (
	"maps"
	"strings"
)

// QueueReferences returns the YAML paths of the lines, opening hours and IVR menus that send
// calls to the queue name ("lines[0].target", "ivr.main.options.1"), in the file's order. The
// queues themselves live in the database after the first start (the file seeds them): the admin
// API refuses to delete a queue the file's call flow still sends calls to. It runs the
// validation of lines and menus again, which may compile a collect step's pattern: call it at
// start, before calls run, not concurrently with readers of c.
func (c *Config) QueueReferences(name string) []string {
	c2 := *c
	c2.Queues = maps.Clone(c.Queues)
	delete(c2.Queues, name)
	k := &checker{}
	c2.validateLines(k)
	c2.validateIVR(k)
	var out []string
	needle := `"queue:` + name + `" names no queue`
	for _, p := range k.ps {
		if strings.HasPrefix(p.Message, needle) {
			out = append(out, p.Path)
		}
	}
	return out
}
