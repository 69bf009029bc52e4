/* procstat.c: process_* metrics from /proc (the contract is procstat.h). */
#include "procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

pb_err_t pb_procstat_attach(pb_metrics_t *m, pb_procstat_t *ps)
{
	static const struct {
		const char *name, *help;
		pb_metric_type_t type;
	} defs[] = {
	    {"process_cpu_seconds_total",
	     "Total user and system CPU time spent in seconds.",
	     PB_METRIC_COUNTER},
	    {"process_resident_memory_bytes", "Resident memory size in bytes.",
	     PB_METRIC_GAUGE},
	    {"process_virtual_memory_bytes", "Virtual memory size in bytes.",
	     PB_METRIC_GAUGE},
	    {"process_open_fds", "Number of open file descriptors.",
	     PB_METRIC_GAUGE},
	    {"process_max_fds", "Maximum number of open file descriptors.",
	     PB_METRIC_GAUGE},
	    {"process_start_time_seconds",
	     "Start time of the process since unix epoch in seconds.",
	     PB_METRIC_GAUGE},
	};
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
		pb_err_t e = pb_metrics_declare(m, defs[i].name, defs[i].type,
						defs[i].help, NULL, 0);
		if (e)
			return e;
	}
	pb_metrics_set_collector(m, pb_procstat_collect, ps);
	pb_procstat_collect(m, ps);
	return PB_OK;
}

/* The system's boot time (btime in /proc/stat), or -1. */
static double boot_time(void)
{
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return -1;
	char line[256];
	double bt = -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "btime ", 6) == 0)
			bt = strtod(line + 6, NULL);
	fclose(f);
	return bt;
}

static double open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	double n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

/* Fields 14 (utime), 15 (stime), 22 (starttime), 23 (vsize), 24 (rss)
 * of /proc/self/stat, counted after the command name's ')'. */
static bool read_stat(double *cpu_ticks, double *start_ticks, double *vsize,
		      double *rss_pages)
{
	FILE *f = fopen("/proc/self/stat", "r");
	if (!f)
		return false;
	char buf[1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return false;
	double v[25] = {0};
	int field = 3; /* p + 2 starts field 3 (state) */
	p += 2;
	while (*p && field <= 24) {
		char *end;
		v[field] = strtod(p, &end);
		if (end == p) /* the state letter */
			end = p + 1;
		p = end;
		while (*p == ' ')
			p++;
		field++;
	}
	if (field <= 24)
		return false;
	*cpu_ticks = v[14] + v[15];
	*start_ticks = v[22];
	*vsize = v[23];
	*rss_pages = v[24];
	return true;
}

void pb_procstat_collect(pb_metrics_t *m, void *opaque)
{
	pb_procstat_t *ps = opaque;
	double cpu, start, vsize, rss;
	double tck = (double)sysconf(_SC_CLK_TCK);
	if (tck > 0 && read_stat(&cpu, &start, &vsize, &rss)) {
		double secs = cpu / tck;
		if (secs > ps->cpu_seconds) {
			pb_metrics_add(m, "process_cpu_seconds_total", "",
				       secs - ps->cpu_seconds);
			ps->cpu_seconds = secs;
		} else {
			pb_metrics_add(m, "process_cpu_seconds_total", "", 0);
		}
		pb_metrics_set(m, "process_resident_memory_bytes", "",
			       rss * (double)sysconf(_SC_PAGESIZE));
		pb_metrics_set(m, "process_virtual_memory_bytes", "", vsize);
		double bt = boot_time();
		if (bt >= 0)
			pb_metrics_set(m, "process_start_time_seconds", "",
				       bt + start / tck);
	}
	double fds = open_fds();
	if (fds >= 0)
		pb_metrics_set(m, "process_open_fds", "", fds);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		pb_metrics_set(m, "process_max_fds", "", (double)rl.rlim_cur);
}
