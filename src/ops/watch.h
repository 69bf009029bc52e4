/*
 * watch.h: `pruvan-bridge watch`: follow the results topic and show ops
 * outcomes per account and reason, rates, the latest failures and
 * rejections, and the DLQ count. --once prints a summary of what is on the
 * topic now and exits. Escape codes only on a terminal.
 */
#ifndef PB_WATCH_H
#define PB_WATCH_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "err.h"

/* Writes to stdout; returns when stop_flag is set or, with once, after
 * the summary. */
pb_err_t pb_watch_run(const pb_config_t *cfg, bool once,
		      volatile sig_atomic_t *stop_flag);

/*
 * Same, writing to out, drawing for a terminal when tty (clear and redraw
 * every second) or plain blocks every 5 s when not; on failure errstr
 * says why and nothing is logged. stop_flag may be NULL (never stops;
 * only sensible with once). For tests and embedding.
 */
pb_err_t pb_watch_run_to(const pb_config_t *cfg, bool once,
			 volatile sig_atomic_t *stop_flag, FILE *out, bool tty,
			 char *errstr, size_t errstr_size);

#endif
