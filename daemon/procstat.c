/*
 * The daemon's own resource use from /proc/self (see procstat.h).  Only
 * read when someone asks (status, metrics), so plain stdio is enough.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "procstat.h"

/* The boot time in Unix seconds ("btime" in /proc/stat), or -1. */
static long long boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	char line[256];
	long long bt = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	fclose(f);
	return bt;
}

/*
 * /proc/self/stat: the command name (field 2) is in parentheses and may
 * hold spaces and ')', so parsing starts after the last ')'.  Fields 14
 * and 15 are utime and stime, 22 starttime (clock ticks since boot), 23
 * vsize (bytes), 24 rss (pages).
 */
static void read_stat(struct procstat *p)
{
	FILE *f = fopen("/proc/self/stat", "re");
	char buf[1024], *s;
	unsigned long long utime, stime, start, vsize;
	long long rss, bt;
	long tick = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	size_t n;

	if (f == NULL)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	s = strrchr(buf, ')');
	if (s == NULL || tick <= 0 || page <= 0)
		return;
	/* From field 3 (the state) on: skip 3 to 13, read 14 and 15, skip
	 * 16 to 21, read 22 to 24. */
	if (sscanf(s + 1,
	           " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu"
	           " %*d %*d %*d %*d %*d %*d %llu %llu %lld",
	           &utime, &stime, &start, &vsize, &rss) != 5)
		return;
	p->cpu_seconds = (double)(utime + stime) / (double)tick;
	p->virtual_bytes = (int64_t)vsize;
	p->resident_bytes = (int64_t)rss * page;
	bt = boot_time();
	if (bt >= 0)
		p->start_time = (double)bt + (double)start / (double)tick;
}

/* Entries of /proc/self/fd, not counting the one reading it. */
static int64_t count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int64_t n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n > 0 ? n - 1 : 0;
}

void procstat_read(struct procstat *ret)
{
	struct rlimit rl;

	*ret = (struct procstat){
	        .cpu_seconds = -1,
	        .resident_bytes = -1,
	        .virtual_bytes = -1,
	        .open_fds = -1,
	        .max_fds = -1,
	        .start_time = -1,
	};
	read_stat(ret);
	ret->open_fds = count_fds();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		ret->max_fds = (int64_t)rl.rlim_cur;
}

bool procstat_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;
	bool ok;

	if (pid <= 0 || len == 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = '\0';
	return ok;
}
