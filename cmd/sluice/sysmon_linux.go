package main

import "syscall"

// execSelf replaces the process image with the running binary's own
// (/proc/self/exe: the same file even if it has been replaced on disk
// since), keeping the process ID, its open files and args; it returns
// only if the exec failed.
func execSelf(args, env []string) {
	_ = syscall.Exec("/proc/self/exe", args, env)
}
