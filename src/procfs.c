// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * procfs: see include/procfs.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "procfs.h"
#include "util.h"

int proc_rss_open(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

int proc_rss_fd(int fd, uint64_t *bytes)
{
	char buf[128];
	unsigned long long size, resident;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return -1;
	*bytes = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
	return 0;
}

int proc_rss(pid_t pid, uint64_t *bytes)
{
	int fd = proc_rss_open(pid), r;

	if (fd < 0)
		return -1;
	r = proc_rss_fd(fd, bytes);
	close(fd);
	return r;
}

static int read_u64_file(const char *path, uint64_t *v)
{
	char buf[64];
	FILE *f = fopen(path, "re");
	int r = -1;

	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && strncmp(buf, "max", 3)) {
		char *end;
		unsigned long long x = strtoull(buf, &end, 10);

		if (end != buf) {
			*v = x;
			r = 0;
		}
	}
	fclose(f);
	return r;
}

int proc_memory_limit(pid_t pid, uint64_t *bytes, const char **from)
{
	char path[512], line[512];
	uint64_t total = 0, limit;
	FILE *f;

	/* the process's cgroup, as seen from here (v2: "0::/path"; v1: "N:memory:/path") */
	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *cg = strrchr(line, ':');
		char file[1024];

		if (!cg)
			continue;
		cg++;
		cg[strcspn(cg, "\n")] = '\0';
		if (!strncmp(line, "0::", 3)) {
			snprintf(file, sizeof(file), "/sys/fs/cgroup%s/memory.max", cg);
			if (read_u64_file(file, &limit) == 0) {
				fclose(f);
				*bytes = limit;
				*from = "cgroup memory.max";
				return 0;
			}
		} else if (strstr(line, ":memory:")) {
			snprintf(file, sizeof(file),
				 "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", cg);
			/* v1 says "no limit" with a huge number */
			if (read_u64_file(file, &limit) == 0 && limit < (1ull << 62)) {
				fclose(f);
				*bytes = limit;
				*from = "cgroup memory.limit_in_bytes";
				return 0;
			}
		}
	}
	if (f)
		fclose(f);
	f = fopen("/proc/meminfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long kb;

		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			total = kb * 1024;
	}
	if (f)
		fclose(f);
	if (!total)
		return error("cannot read the memory limit of process %d", pid);
	*bytes = total;
	*from = "MemTotal";
	return 0;
}

ssize_t proc_read_small(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return n;
}

int proc_thread_cpu_ns(pid_t pid, pid_t tid, uint64_t *ns)
{
	char path[64], buf[128];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", pid, tid);
	if (proc_read_small(path, buf, sizeof(buf)) < 0)
		return -1;
	return sscanf(buf, "%" SCNu64, ns) == 1 ? 0 : -1;
}

char proc_thread_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	if (proc_read_small(path, buf, sizeof(buf)) < 0)
		return 0;
	/* "tid (comm) S ...": the name may hold anything, so look after its last ')' */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] ? p[2] : 0;
}

long proc_thread_syscall(pid_t pid, pid_t tid)
{
	char path[64], buf[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tid);
	/* "running" while on a CPU, the number and arguments while in a system call */
	if (proc_read_small(path, buf, sizeof(buf)) < 0 || buf[0] < '0' || buf[0] > '9')
		return -1;
	return atol(buf);
}

void proc_thread_comm(pid_t pid, pid_t tid, char *buf, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	if (proc_read_small(path, buf, len) < 0)
		snprintf(buf, len, "?");
	buf[strcspn(buf, "\n")] = '\0';
}

/* Source files larger than this are not read for one line. */
#define SOURCE_MAX (16u << 20)

char *proc_source_line(pid_t pid, const char *file, int line)
{
	char path[PATH_MAX], *text, *p, *end, *out = NULL;
	struct stat st;
	ssize_t got;
	int fd;

	if (line < 1 || !file || file[0] != '/' ||
	    snprintf(path, sizeof(path), "/proc/%d/root%s", pid, file) >= (int)sizeof(path))
		return NULL;
	/* a name the program chose: never block on a fifo or read a device */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > SOURCE_MAX) {
		close(fd);
		return NULL;
	}
	text = xmalloc((size_t)st.st_size + 1);
	got = read(fd, text, (size_t)st.st_size);
	close(fd);
	if (got < 0) {
		free(text);
		return NULL;
	}
	text[got] = '\0';
	p = text;
	end = text + got;
	for (int n = 1; n < line && p < end; n++) {
		p = memchr(p, '\n', (size_t)(end - p));
		if (!p)
			break;
		p++;
	}
	if (p && p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));

		out = xstrndup(p, (size_t)((nl ? nl : end) - p));
	}
	free(text);
	return out;
}
