package recordings

const envCrashChild = "RECORDINGS_CRASH_CHILD"

func crashChild() int { return 0 }
