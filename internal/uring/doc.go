// Package uring is the one minimal io_uring of the repository (io_uring_setup(2),
// io_uring_enter(2), io_uring_register(2)): a ring through which a caller hands the kernel a
// batch of sends — each on its own socket — with one system call instead of one each. The
// media plane's poll loops send every packet a round of ready sockets forwarded through one
// (media/recv_linux.go); the benchmark's RTP generator sends each 1 ms slot's packets through
// one (bench/rtpgen). A RecvRing receives the datagrams of many sockets in one
// io_uring_enter(2) (multishot receives into a registered buffer ring, with the kernel's work
// deferred to the owner's enter): the media poll loops can receive through one each
// (media/recvring_linux.go). Linux only; it has no state outside the rings a caller owns; a
// Ring belongs to one goroutine, a RecvRing to one goroutine locked to its OS thread.
//
// Every send it prepares carries MSG_DONTWAIT: the kernel tries it once, inline in
// io_uring_enter, and a socket whose send buffer is full completes it with EAGAIN instead of
// queueing it for later (io_uring marks such a request no-wait) — so every completion is
// normally posted before io_uring_enter returns, and Submit's first io_uring_enter is a raw
// system call that waits for nothing.
package uring
