package media

import (
	"net/netip"
	"time"
)

// handler handles one datagram received on a watched socket, on the socket's reader. tx is the
// reader's send batch: what the handler forwards joins it and goes out when the reader flushes
// it, after the datagrams of the same read (nil: sent at once; see txBatch).
type handler func(b []byte, src netip.AddrPort, at time.Time, tx *txBatch)
