/*
 * SIGTERM during start-up and the first group join (contract section 8:
 * exit 0 within the grace period), against real Redis, the mock cluster
 * and the simulator. The worker is signalled once its subscription is
 * made ("consuming"), at several moments after it: before the join
 * completes, around the first assignment and after it. Every run must
 * exit 0; with librdkafka before 2.3.0 and the cooperative-sticky
 * assignor this aborted (SIGABRT in the assignor) in a good share of runs.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS 60000

static char cfg[512];

static int setup(void **state)
{
	(void)state;
	if (h_start_all("rel-signals", 3))
		return -1;
	return h_write_config("config.json", NULL, cfg, sizeof(cfg));
}

static void sigterm_during_join(void **state)
{
	(void)state;
	h_begin("sigterm_during_join");
	json_t *ev = h_event_create("sig-1", "acme", "WO-SIG", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	/* delays after the subscription; the join takes about 3 s on the
	 * mock cluster, so the first ones land inside it */
	static const int delays_ms[] = {0,   0,	   5,	 20,   50,   100, 250,
					500, 1000, 2000, 3000, 3200, 4000};
	size_t n = sizeof(delays_ms) / sizeof(*delays_ms);
	for (size_t i = 0; i < n; i++) {
		char label[32];
		snprintf(label, sizeof(label), "w%zu", i);
		h_worker_t *w = h_worker_run(label, cfg, false);
		assert_non_null(w);
		assert_true(h_worker_log_has(w, "\"consuming\"", 20000));
		int left = delays_ms[i];
		while (left > 0) { /* the moment under test, not a sync */
			int step = left < 5 ? left : 5;
			h_nap_ms(step);
			left -= step;
		}
		assert_int_equal(h_worker_signal(w, SIGTERM), 0);
		int rc = h_worker_wait(w, WAIT_MS);
		if (rc != 0) {
			fprintf(stderr,
				"run %zu (SIGTERM %d ms after subscribing): "
				"exit %d\n",
				i, delays_ms[i], rc);
			h_worker_dump(w, 30);
		}
		assert_int_equal(rc, 0);
	}
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sigterm_during_join),
	};
	return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
