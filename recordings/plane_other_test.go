//go:build !linux

package recordings

// The media-plane profile (plane_test.go) needs Linux (its generator is epoll-based).
const envPlaneChild = "SWITCHBOARD_PLANE_GEN_CHILD"

func planeChild(int) int { return 2 }
