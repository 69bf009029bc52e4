/*
 * pusher.h: pushes work orders to Pruvan (contract sections 7 and 8).
 *
 * The pipeline submits one job per event; the pusher batches jobs per
 * account ({"workOrders":[...]}, up to pruvan.batchMaxOrders, waiting at
 * most pruvan.batchMaxWaitMs to fill a batch), encodes each batch as the
 * account's bodyEncoding says (form: the urlencoded field workOrders, what
 * Pruvan documents, the default; multipart: the same field as
 * multipart/form-data; json: a raw application/json body), built once per
 * batch and sent again as it is on a retry, sends them with libcurl's
 * multi interface (keep-alive, TLS verification on, at most
 * pruvan.maxInFlight requests per account), and hands every job back
 * exactly once through the done callback with its result.
 *
 * Failures, classified:
 *   - retriable: timeout, connection error, HTTP 5xx, 429 (Retry-After is
 *     honoured), a 2xx body that is not Pruvan's answer. The batch is sent
 *     again after an exponential backoff with jitter, up to
 *     pruvan.maxAttempts sends; then each job fails (retries_exhausted).
 *   - the batch as a whole refused (Pruvan's "error" set, or a 4xx): a
 *     batch of several orders is split in halves and each half sent again
 *     (not counted as an attempt), until the order at fault is alone; that
 *     one fails (pruvan_error / http_4xx) and its neighbours go through.
 * A circuit breaker per account stops sending after
 * pruvan.circuitFailures consecutive retriable failures, for
 * pruvan.circuitOpenMs, then lets one probe request through; queued jobs
 * wait meanwhile (the pipeline's backpressure bounds them).
 *
 * The pusher never logs and never sees Kafka or Redis. PushKey URLs never
 * leave it: messages describe failures without the URL.
 *
 * @locality: everything, including the done callback, runs on the thread
 * that calls pb_pusher_poll.
 */
#ifndef PB_PUSHER_H
#define PB_PUSHER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "metrics.h"
#include "rules.h"

struct curl_waitfd;

typedef struct pb_push_job {
	/* in: set by the caller before pb_pusher_submit */
	const pb_account_t *acct;
	json_t *work_order; /* borrowed until the done callback */
	/* work_order as pb_jt_json writes it (without sorting keys), or NULL
	 * to have the pusher write it; borrowed until the done callback */
	const char *work_order_text;
	bool alone; /* send in a request of its own */
	void *opaque;

	/* out: valid in the done callback */
	bool ok;		   /* Pruvan accepted the request */
	pb_pruvan_result_t result; /* Pruvan's counts for that request */
	int batch_size;		   /* orders in that request */
	long http_status;	   /* last HTTP status, 0 if none */
	int attempts;		   /* sends of this job */
	const char *fail_reason;   /* when !ok: pruvan_error, http_4xx,
				      http_error, retries_exhausted */
	char message[512];	   /* when !ok: what happened */
	char body_start[512];	   /* start of the last response body */

	/* internal */
	struct pb_push_job *next;
	int64_t enqueued_ms;
} pb_push_job_t;

typedef void (*pb_push_done_cb)(pb_push_job_t *job, void *opaque);

typedef struct pb_pusher pb_pusher_t;

/* cfg and metrics are borrowed and must outlive the pusher. */
pb_err_t pb_pusher_new(const pb_config_t *cfg, pb_metrics_t *metrics,
		       pb_push_done_cb done, void *done_opaque,
		       pb_pusher_t **out, char *errstr, size_t errstr_size);
/* Requests on the wire are abandoned. Returns every job not handed back
 * yet (on the wire, waiting for a retry, queued), linked by ->next and not
 * passed to the done callback, for the caller to free what they belong to. */
pb_push_job_t *pb_pusher_destroy(pb_pusher_t *p);

/* Queue a job; its account must be one of the configuration's. */
void pb_pusher_submit(pb_pusher_t *p, pb_push_job_t *job);

/*
 * Send what is due, wait up to timeout_ms for network activity or for one
 * of the extra file descriptors, handle answers and call the done callback
 * for every finished job. Returns after at most timeout_ms (earlier when a
 * batch or retry falls due, or an extra fd is readable).
 */
pb_err_t pb_pusher_poll(pb_pusher_t *p, struct curl_waitfd *extra,
			unsigned n_extra, int timeout_ms);

/* Send queued jobs now instead of waiting for batches to fill. */
void pb_pusher_flush(pb_pusher_t *p);

/* Jobs submitted and not yet handed back. */
size_t pb_pusher_pending(const pb_pusher_t *p);

/* Number of accounts whose circuit is open now. */
int pb_pusher_circuits_open(const pb_pusher_t *p);

/* Requests sent so far (all accounts), for benchmarks. */
uint64_t pb_pusher_requests(const pb_pusher_t *p);

/* Hand back every job not yet sent that satisfies pred (for revoked
 * partitions); they are returned via *out as a list linked by ->next and
 * are NOT passed to the done callback. In-flight jobs are kept. */
pb_push_job_t *pb_pusher_take_queued(pb_pusher_t *p,
				     bool (*pred)(pb_push_job_t *, void *),
				     void *pred_opaque);

/*
 * Push acct's orders to url from the next request on (a PushKey learned
 * from Pruvan's validate call; copied, SECRET). NULL: back to the
 * configured URL; an account with neither keeps its jobs queued.
 */
pb_err_t pb_pusher_set_url(pb_pusher_t *p, const pb_account_t *acct,
			   const char *url);

#endif
