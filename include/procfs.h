/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * procfs: figures about a process read from /proc without stopping it.
 */
#ifndef PYLEAKDB_PROCFS_H
#define PYLEAKDB_PROCFS_H

#include <stdint.h>
#include <sys/types.h>

/* Resident set size in bytes, from /proc/PID/statm (cheap enough to poll). */
int proc_rss(pid_t pid, uint64_t *bytes);
/* An open /proc/PID/statm for polling: read it with proc_rss_fd(). */
int proc_rss_open(pid_t pid);
int proc_rss_fd(int fd, uint64_t *bytes);
/*
 * The memory limit that applies to the process: its cgroup's memory.max
 * (v2) or memory.limit_in_bytes (v1) when set, else the machine's MemTotal.
 * *from says which.
 */
int proc_memory_limit(pid_t pid, uint64_t *bytes, const char **from);
/*
 * A small /proc file, whole and NUL-terminated in buf (what does not fit in
 * len - 1 bytes is left out): its length, or -1 when it cannot be read.
 */
ssize_t proc_read_small(const char *path, char *buf, size_t len);
/* Time a thread has spent on a CPU, in nanoseconds (/proc/PID/task/TID/schedstat). */
int proc_thread_cpu_ns(pid_t pid, pid_t tid, uint64_t *ns);
/*
 * The kernel's one-letter scheduler state of a thread (R, S, D, T, t, Z, X),
 * or 0 when it is gone.  tid == pid for the process's main thread.
 */
char proc_thread_state(pid_t pid, pid_t tid);
/* The system call a thread sleeps in (/proc/PID/task/TID/syscall), or -1 when it runs or is gone.
 */
long proc_thread_syscall(pid_t pid, pid_t tid);
/* A thread's name (/proc/PID/task/TID/comm) without its newline, or "?". */
void proc_thread_comm(pid_t pid, pid_t tid, char *buf, size_t len);
/*
 * Line `line` (from 1) of a source file as the process sees it (through
 * /proc/PID/root), without its newline: a malloc'ed string, or NULL when
 * the file is not a regular file, is too big, or has no such line.
 */
char *proc_source_line(pid_t pid, const char *file, int line);

#endif
