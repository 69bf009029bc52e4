/*
 * sim_state.h: the model behind pruvan-sim, with no HTTP in it.
 *
 * Holds what a Pruvan account would hold (orders per apiKey, by
 * workOrderNumber), the armed faults, a bounded log of the requests seen and
 * running statistics. pruvan-sim.c is only the HTTP skin around it.
 *
 * Invariants:
 * - Every function takes the one mutex for its whole body, so a batch is
 *   applied all or nothing and the log, the stats and the store always agree.
 * - Nothing returned aliases internal state: JSON results are built afresh
 *   from the store's and the log's texts, so callers never race them.
 * - The request log keeps at most max_kept entries (oldest dropped); the
 *   statistics keep counting past that.
 */
#ifndef PB_SIM_STATE_H
#define PB_SIM_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sim_batch.h"

/* Largest request body accepted (Pruvan's own limit is unknown). */
#define PB_SIM_MAX_BODY (8u * 1024u * 1024u)

typedef struct pb_sim pb_sim_t;

typedef enum pb_sim_fault_kind {
	PB_SIM_FAULT_NONE = 0,
	PB_SIM_FAULT_FAIL,	 /* answer with an HTTP error status */
	PB_SIM_FAULT_RATE_LIMIT, /* 429 with Retry-After */
	PB_SIM_FAULT_TIMEOUT,	 /* hold, then answer normally or close */
	PB_SIM_FAULT_ERROR_NEXT, /* 200 with a non-null error */
} pb_sim_fault_kind_t;

/* One armed fault; 'count' is how many requests it still applies to. */
typedef struct pb_sim_fault {
	pb_sim_fault_kind_t kind;
	int64_t count;
	int status;	      /* FAIL */
	int64_t retry_after;  /* RATE_LIMIT, seconds */
	int64_t hold_ms;      /* TIMEOUT */
	bool close;	      /* TIMEOUT: close without answering */
	char error[256];      /* ERROR_NEXT */
	char work_order[128]; /* "": any request; else only requests whose
				 workOrders name this workOrderNumber */
} pb_sim_fault_t;

/* A push (POST /api/) as the HTTP layer saw it. */
typedef struct pb_sim_push {
	const char *api_key;	     /* NULL or "" means missing */
	const char *content_type;    /* may be NULL */
	const char *encoding;	     /* "form", "multipart", "json", "other" */
	const pb_sim_batch_t *batch; /* the body's workOrders, borrowed;
					NULL when the body was not read */
	int reject_status;	     /* 400 or 413 when the body was unusable */
	const char *reject_error;    /* why, when reject_status is set */
	pb_sim_fault_t fault;	     /* from pb_sim_arrive; kind NONE if none */
	int64_t received_ms;	     /* wall clock at arrival */
} pb_sim_push_t;

/* What to send back. body is malloc'd JSON text, owned by the caller. */
typedef struct pb_sim_answer {
	int status;	     /* 0: close the connection without answering */
	int64_t retry_after; /* > 0: send a Retry-After header */
	char *body;
} pb_sim_answer_t;

/* max_kept: request log bound (>= 1); latency_ms: baseline latency. */
pb_sim_t *pb_sim_new(size_t max_kept, int64_t latency_ms);
void pb_sim_destroy(pb_sim_t *sim);

/*
 * A request to /api/ arrived: consume the first armed fault that applies to
 * it (faults are consumed in arrival order; one with a work_order filter
 * applies only to a request whose batch, borrowed and may be NULL, names
 * that order), and read the latency to apply.
 */
void pb_sim_arrive(pb_sim_t *sim, const pb_sim_batch_t *batch,
		   pb_sim_fault_t *fault_out, int64_t *latency_ms_out);

/*
 * Decide and apply a push, record it, and fill *answer (the batch is
 * copied where kept). PB_ERR_NOMEM is the only failure.
 */
pb_err_t pb_sim_push(pb_sim_t *sim, pb_sim_push_t *push,
		     pb_sim_answer_t *answer);

/* GET on the PushKey URL: Pruvan refreshes the integration. */
pb_err_t pb_sim_refresh(pb_sim_t *sim, const char *api_key,
			pb_sim_answer_t *answer);

/*
 * Arm faults from a JSON spec (see pruvan-sim.c for the shape). The spec is
 * validated whole before anything is armed; on PB_ERR_INVALID errstr says
 * which key is wrong.
 */
pb_err_t pb_sim_faults_add(pb_sim_t *sim, json_t *spec, char *errstr,
			   size_t errstr_size);
/* Disarm every fault and restore the baseline latency. */
void pb_sim_faults_clear(pb_sim_t *sim);
/* The armed faults as JSON (new reference; NULL on NOMEM). */
json_t *pb_sim_faults_json(pb_sim_t *sim);

/* Kept requests with seq > since, optionally only one apiKey (new ref). */
json_t *pb_sim_requests_json(pb_sim_t *sim, int64_t since, const char *api_key);
/* Stored orders of one apiKey (new reference; NULL on NOMEM). */
json_t *pb_sim_orders_json(pb_sim_t *sim, const char *api_key);
/* Running statistics (new reference; NULL on NOMEM). */
json_t *pb_sim_stats_json(pb_sim_t *sim);

/* Forget orders, requests, faults and statistics. */
void pb_sim_reset(pb_sim_t *sim);

#endif
