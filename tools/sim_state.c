/*
 * sim_state.c: the Pruvan model behind pruvan-sim (see sim_state.h).
 *
 * The orders live in sim_store.c: store[apiKey][workOrderNumber] is the
 * order as Pruvan would hold it (every field ever pushed, merged) plus our
 * bookkeeping "_created", "_updated", "_deleted" (how many times each
 * effect happened) and "_isDeleted". Pushed fields whose names start with
 * '_' are ignored so a client can never overwrite the bookkeeping.
 *
 * A batch (sim_batch.c: the orders as texts and facts, no JSON tree) is
 * decided in two passes under the mutex: plan (classify each order as
 * create, update or delete against the store *and* the orders earlier in
 * the same batch, validate creates, check the reject list), then apply
 * only if the plan found nothing wrong. That is what makes a batch all or
 * nothing, as Pruvan answers for a batch as a whole. The request log keeps
 * texts too (the workOrders pushed, the answer sent); the inspection
 * endpoints turn them into JSON when asked.
 */
#include "sim_state.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim_store.h"
#include "util.h"

#define SIM_MAX_FAULTS 256     /* armed fault entries */
#define SIM_MAX_COUNT  1000000 /* requests one fault entry may cover */
#define SIM_MAX_MS     600000  /* latency and hold bound: ten minutes */
#define SIM_MAX_REJECT 10000   /* rejectWorkOrders entries */
#define SIM_MAX_STATUS 600     /* byStatus counters, index 0 = closed */
#define SIM_PEND_LOCAL 128     /* plan's table of a batch's own orders */

/* One request of the log, as texts. */
typedef struct sim_entry {
	int64_t seq;
	char *api_key;	    /* NULL when missing */
	char *content_type; /* NULL when missing */
	char encoding[16];
	char *wos; /* the workOrders value's JSON text, NULL when absent */
	size_t wos_len, wos_cap;
	int status;
	char *response; /* the answer's JSON text, NULL when none */
	pb_sim_fault_kind_t fault;
	int64_t received_ms;
} sim_entry_t;

struct pb_sim {
	pthread_mutex_t mu;
	int64_t base_latency_ms; /* from the CLI; restored by a clear */
	int64_t latency_ms;

	/* Armed faults, FIFO: faults[0] is consumed first. */
	pb_sim_fault_t faults[SIM_MAX_FAULTS];
	size_t nfaults;
	json_t *reject; /* object used as a set of workOrderNumbers */

	pb_sim_store_t *store;

	/* Request log: a ring of max_kept entries, oldest at ring_head. */
	sim_entry_t *ring;
	size_t max_kept, ring_head, ring_len;
	int64_t seq;
	char *spare; /* the dropped entry's workOrders buffer, for the next */
	size_t spare_cap;

	int64_t requests, work_orders, created, updated, deleted;
	int64_t refused, faulted, refreshes, dropped;
	int64_t by_status[SIM_MAX_STATUS];
};

static const char *fault_name(pb_sim_fault_kind_t kind)
{
	switch (kind) {
	case PB_SIM_FAULT_FAIL:
		return "fail";
	case PB_SIM_FAULT_RATE_LIMIT:
		return "rateLimit";
	case PB_SIM_FAULT_TIMEOUT:
		return "timeout";
	case PB_SIM_FAULT_ERROR_NEXT:
		return "errorNext";
	case PB_SIM_FAULT_NONE:
		break;
	}
	return NULL;
}

pb_sim_t *pb_sim_new(size_t max_kept, int64_t latency_ms)
{
	pb_sim_t *sim = calloc(1, sizeof(*sim));
	if (!sim)
		return NULL;
	if (max_kept < 1)
		max_kept = 1;
	sim->max_kept = max_kept;
	sim->base_latency_ms = sim->latency_ms = latency_ms;
	sim->ring = calloc(max_kept, sizeof(*sim->ring));
	sim->reject = json_object();
	sim->store = pb_sim_store_new();
	if (!sim->ring || !sim->reject || !sim->store)
		goto out_fail;
	if (pthread_mutex_init(&sim->mu, NULL) != 0)
		goto out_fail;
	return sim;
out_fail:
	free(sim->ring);
	json_decref(sim->reject);
	pb_sim_store_free(sim->store);
	free(sim);
	return NULL;
}

static void entry_free(sim_entry_t *e)
{
	free(e->api_key);
	free(e->content_type);
	free(e->wos);
	free(e->response);
	memset(e, 0, sizeof(*e));
}

static void ring_clear(pb_sim_t *sim)
{
	for (size_t i = 0; i < sim->ring_len; i++)
		entry_free(&sim->ring[(sim->ring_head + i) % sim->max_kept]);
	sim->ring_head = sim->ring_len = 0;
}

void pb_sim_destroy(pb_sim_t *sim)
{
	if (!sim)
		return;
	ring_clear(sim);
	free(sim->ring);
	free(sim->spare);
	json_decref(sim->reject);
	pb_sim_store_free(sim->store);
	pthread_mutex_destroy(&sim->mu);
	free(sim);
}

static bool batch_is_array(const pb_sim_batch_t *b)
{
	return b && b->present && b->is_array;
}

/* Does fault f apply to a request carrying batch? */
static bool fault_applies(const pb_sim_fault_t *f, const pb_sim_batch_t *b)
{
	if (!f->work_order[0])
		return true;
	size_t n = strlen(f->work_order);
	for (size_t i = 0; batch_is_array(b) && i < b->n; i++) {
		const pb_sim_order_t *o = &b->orders[i];
		if (o->won && o->won_len == n &&
		    memcmp(o->won, f->work_order, n) == 0)
			return true;
	}
	return false;
}

void pb_sim_arrive(pb_sim_t *sim, const pb_sim_batch_t *batch,
		   pb_sim_fault_t *fault_out, int64_t *latency_ms_out)
{
	pthread_mutex_lock(&sim->mu);
	memset(fault_out, 0, sizeof(*fault_out));
	for (size_t i = 0; i < sim->nfaults; i++) {
		if (!fault_applies(&sim->faults[i], batch))
			continue;
		*fault_out = sim->faults[i];
		fault_out->count = 1;
		if (--sim->faults[i].count <= 0) {
			sim->nfaults--;
			memmove(&sim->faults[i], &sim->faults[i + 1],
				(sim->nfaults - i) * sizeof(sim->faults[0]));
		}
		break;
	}
	*latency_ms_out = sim->latency_ms;
	pthread_mutex_unlock(&sim->mu);
}

/* ---- answers ---------------------------------------------------------- */

/* The text of a JSON answer (reference stolen); NULL on NOMEM. */
static char *answer_text(json_t *v)
{
	char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
	json_decref(v);
	return text;
}

static char *counts_answer(int64_t c, int64_t u, int64_t d, const char *error)
{
	if (!error) {
		/* the success answer, as json_dumps(JSON_COMPACT) writes it */
		char buf[160];
		snprintf(buf, sizeof(buf),
			 "{\"response\":{\"created\":%lld,\"updated\":%lld,"
			 "\"deleted\":%lld},\"error\":null}",
			 (long long)c, (long long)u, (long long)d);
		return strdup(buf);
	}
	return answer_text(json_pack("{s:{s:I,s:I,s:I},s:s}", "response",
				     "created", (json_int_t)c, "updated",
				     (json_int_t)u, "deleted", (json_int_t)d,
				     "error", error));
}

/* ---- planning and applying a batch ------------------------------------ */

/* The orders earlier in a batch: workOrderNumber -> live after them. */
typedef struct {
	const char *won;
	size_t len;
	bool live;
} sim_pend_t;

typedef struct {
	sim_pend_t *slots;
	size_t mask;
} sim_pending_t;

static sim_pend_t *pend_slot(sim_pending_t *p, const char *won, size_t len)
{
	size_t h = 5381;
	for (size_t i = 0; i < len; i++)
		h = h * 33 + (unsigned char)won[i];
	for (size_t i = h & p->mask;; i = (i + 1) & p->mask) {
		sim_pend_t *s = &p->slots[i];
		if (!s->won || (s->len == len && memcmp(s->won, won, len) == 0))
			return s;
	}
}

static int won_shown(size_t len)
{
	return len > 200 ? 200 : (int)len;
}

/* A planned order: what to do, and its record if it has one. */
typedef struct {
	pb_sim_action_t action;
	pb_sim_rec_t *rec;
} sim_plan_t;

/* Classify order i into *plan; 0, or -1 with the error text in err. */
static int plan_order(pb_sim_t *sim, const pb_sim_account_t *acc,
		      sim_pending_t *pending, const pb_sim_order_t *o, size_t i,
		      sim_plan_t *plan, char *err, size_t err_size)
{
	if (!o->is_object) {
		snprintf(err, err_size, "workOrders[%zu]: not an object", i);
		return -1;
	}
	if (!o->won) {
		snprintf(err, err_size,
			 "workOrders[%zu]: missing workOrderNumber", i);
		return -1;
	}
	if (json_object_size(sim->reject) &&
	    json_object_getn(sim->reject, o->won, o->won_len)) {
		snprintf(err, err_size,
			 "%.*s: rejected by simulator (rejectWorkOrders)",
			 won_shown(o->won_len), o->won);
		return -1;
	}
	sim_pend_t *seen = pend_slot(pending, o->won, o->won_len);
	plan->rec = pb_sim_store_find(acc, o->won, o->won_len);
	if (o->is_delete) {
		plan->action = PB_SIM_DELETE;
		*seen = (sim_pend_t){o->won, o->won_len, false};
		return 0;
	}
	bool live = seen->won ? seen->live : pb_sim_rec_live(plan->rec);
	if (live) {
		plan->action = PB_SIM_UPDATE;
		return 0;
	}
	if (o->problems) {
		char problems[256];
		pb_sim_problems_text(o->problems, problems, sizeof(problems));
		snprintf(err, err_size, "%.*s: %s", won_shown(o->won_len),
			 o->won, problems);
		return -1;
	}
	plan->action = PB_SIM_CREATE;
	*seen = (sim_pend_t){o->won, o->won_len, true};
	return 0;
}

/*
 * Classify every order of the batch into actions[]; 0 if the batch may be
 * applied, else -1 with the error text in err. 'pending' tracks orders
 * earlier in this batch so that a create followed by an update of the
 * same order counts as one of each.
 */
static int plan_batch(pb_sim_t *sim, const pb_sim_account_t *acc,
		      const pb_sim_batch_t *b, sim_plan_t *plans, char *err,
		      size_t err_size)
{
	sim_pend_t local[SIM_PEND_LOCAL];
	size_t size = 16;
	while (size < 2 * b->n)
		size *= 2;
	sim_pending_t pending = {local, size - 1};
	if (size > SIM_PEND_LOCAL)
		pending.slots = calloc(size, sizeof(*pending.slots));
	else
		memset(local, 0, sizeof(local));
	if (!pending.slots) {
		snprintf(err, err_size, "simulator out of memory");
		return -1;
	}
	int ret = 0;
	for (size_t i = 0; i < b->n && ret == 0; i++)
		ret = plan_order(sim, acc, &pending, &b->orders[i], i,
				 &plans[i], err, err_size);
	if (pending.slots != local)
		free(pending.slots);
	return ret;
}

static pb_err_t apply_batch(pb_sim_account_t *acc, const pb_sim_batch_t *b,
			    const sim_plan_t *plans, int64_t *c, int64_t *u,
			    int64_t *d)
{
	for (size_t i = 0; i < b->n; i++) {
		pb_sim_action_t a = plans[i].action;
		if (pb_sim_store_apply(acc, plans[i].rec, &b->orders[i], a) !=
		    PB_OK)
			return PB_ERR_NOMEM;
		*c += a == PB_SIM_CREATE;
		*u += a == PB_SIM_UPDATE;
		*d += a == PB_SIM_DELETE;
	}
	return PB_OK;
}

/* ---- recording -------------------------------------------------------- */

/* The next entry of the ring, the oldest one dropped when it is full. */
static sim_entry_t *ring_next(pb_sim_t *sim)
{
	sim_entry_t *e;
	if (sim->ring_len == sim->max_kept) {
		e = &sim->ring[sim->ring_head];
		if (e->wos && e->wos_cap > sim->spare_cap) {
			free(sim->spare);
			sim->spare = e->wos;
			sim->spare_cap = e->wos_cap;
			e->wos = NULL;
		}
		entry_free(e);
		sim->ring_head = (sim->ring_head + 1) % sim->max_kept;
		sim->dropped++;
		return e;
	}
	e = &sim->ring[(sim->ring_head + sim->ring_len) % sim->max_kept];
	sim->ring_len++;
	return e;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Record a push and hand its answer over (response: text, stolen). */
static pb_err_t record(pb_sim_t *sim, const pb_sim_push_t *push, int status,
		       char *response, pb_sim_answer_t *answer)
{
	const pb_sim_batch_t *b = push->batch;
	const char *key =
	    push->api_key && push->api_key[0] ? push->api_key : NULL;
	sim_entry_t e = {.seq = sim->seq + 1,
			 .status = status,
			 .fault = push->fault.kind,
			 .received_ms = push->received_ms};
	pb_strlcpy(e.encoding, push->encoding ? push->encoding : "json",
		   sizeof(e.encoding));
	e.api_key = dup_or_null(key);
	e.content_type = dup_or_null(push->content_type);
	e.response = dup_or_null(response);
	if (b && b->present) {
		/* the buffer of the last dropped entry, when it fits */
		if (sim->spare && sim->spare_cap > b->wos_len) {
			e.wos = sim->spare;
			e.wos_cap = sim->spare_cap;
			sim->spare = NULL;
			sim->spare_cap = 0;
		} else {
			e.wos_cap = b->wos_len + 1 + b->wos_len / 4;
			e.wos = malloc(e.wos_cap);
		}
	}
	if (e.wos) {
		memcpy(e.wos, b->wos, b->wos_len);
		e.wos[b->wos_len] = '\0';
		e.wos_len = b->wos_len;
	}
	if ((key && !e.api_key) || (push->content_type && !e.content_type) ||
	    (response && !e.response) || (b && b->present && !e.wos)) {
		entry_free(&e);
		free(response);
		return PB_ERR_NOMEM;
	}
	sim->seq++;
	sim->requests++;
	sim->by_status[status > 0 && status < SIM_MAX_STATUS ? status : 0]++;
	*ring_next(sim) = e;
	answer->status = status;
	answer->body = response;
	return PB_OK;
}

/* The answer of a fault that stands in front of the application, or NULL
 * (no fault, or a timeout that answers normally after its hold). */
static bool fault_answer(pb_sim_t *sim, const pb_sim_push_t *push, int *status,
			 char **response, pb_sim_answer_t *answer)
{
	char errbuf[64];
	switch (push->fault.kind) {
	case PB_SIM_FAULT_FAIL:
		snprintf(errbuf, sizeof(errbuf), "simulated %d",
			 push->fault.status);
		*status = push->fault.status;
		*response = answer_text(
		    json_pack("{s:n,s:s}", "response", "error", errbuf));
		break;
	case PB_SIM_FAULT_RATE_LIMIT:
		*status = 429;
		answer->retry_after = push->fault.retry_after;
		*response = answer_text(json_pack("{s:n,s:s}", "response",
						  "error", "simulated 429"));
		break;
	case PB_SIM_FAULT_ERROR_NEXT:
		*response = counts_answer(0, 0, 0, push->fault.error);
		break;
	case PB_SIM_FAULT_TIMEOUT:
		if (!push->fault.close)
			return false;
		*status = 0;
		break;
	case PB_SIM_FAULT_NONE:
		return false;
	}
	sim->faulted++;
	return true;
}

/* Decide a push that no fault took: *response, or NOMEM. */
static pb_err_t decide(pb_sim_t *sim, const pb_sim_push_t *push, int *status,
		       char **response)
{
	const pb_sim_batch_t *b = push->batch;
	char errbuf[512];
	const char *refusal = NULL;
	if (push->reject_status) {
		*status = push->reject_status;
		refusal = push->reject_error;
	} else if (!push->api_key || !push->api_key[0]) {
		refusal = "invalid apiKey";
	} else if (!batch_is_array(b)) {
		refusal = "workOrders must be an array";
	}
	if (refusal) {
		*response = counts_answer(0, 0, 0, refusal);
		sim->refused++;
		return PB_OK;
	}
	pb_sim_account_t *acc =
	    pb_sim_store_account(sim->store, push->api_key, true);
	sim_plan_t *plans = calloc(b->n ? b->n : 1, sizeof(*plans));
	if (!acc || !plans) {
		free(plans);
		return PB_ERR_NOMEM;
	}
	int64_t c = 0, u = 0, d = 0;
	pb_err_t err = PB_OK;
	if (plan_batch(sim, acc, b, plans, errbuf, sizeof(errbuf)) != 0) {
		*response = counts_answer(0, 0, 0, errbuf);
		sim->refused++;
	} else if (apply_batch(acc, b, plans, &c, &u, &d) != PB_OK) {
		err = PB_ERR_NOMEM;
	} else {
		sim->created += c;
		sim->updated += u;
		sim->deleted += d;
		*response = counts_answer(c, u, d, NULL);
	}
	free(plans);
	return err;
}

pb_err_t pb_sim_push(pb_sim_t *sim, pb_sim_push_t *push,
		     pb_sim_answer_t *answer)
{
	pb_err_t err = PB_OK;
	char *response = NULL;
	int status = 200;
	memset(answer, 0, sizeof(*answer));

	pthread_mutex_lock(&sim->mu);
	if (batch_is_array(push->batch))
		sim->work_orders += (int64_t)push->batch->n;
	/* Faults first: they stand for trouble in front of the application. */
	if (!fault_answer(sim, push, &status, &response, answer)) {
		if (push->fault.kind == PB_SIM_FAULT_TIMEOUT)
			sim->faulted++;
		err = decide(sim, push, &status, &response);
	}
	if (err == PB_OK && (status == 0 || response)) {
		err = record(sim, push, status, response, answer);
		response = NULL; /* record took it */
	} else {
		err = PB_ERR_NOMEM;
	}
	pthread_mutex_unlock(&sim->mu);
	free(response);
	if (err != PB_OK) {
		free(answer->body);
		memset(answer, 0, sizeof(*answer));
	}
	return err;
}

pb_err_t pb_sim_refresh(pb_sim_t *sim, const char *api_key,
			pb_sim_answer_t *answer)
{
	memset(answer, 0, sizeof(*answer));
	bool ok = api_key && api_key[0];
	if (ok) {
		pthread_mutex_lock(&sim->mu);
		sim->refreshes++;
		pthread_mutex_unlock(&sim->mu);
	}
	json_t *r = json_pack("{s:b,s:s}", "response", ok, "error",
			      ok ? "success" : "invalid clientCode");
	if (!r)
		return PB_ERR_NOMEM;
	answer->status = 200;
	answer->body = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	return answer->body ? PB_OK : PB_ERR_NOMEM;
}

/* ---- faults ----------------------------------------------------------- */

/*
 * Read an optional integer member within [min, max]; def when absent.
 * 0 on success, -1 with errstr filled.
 */
static int get_int(json_t *obj, const char *where, const char *key, int64_t def,
		   int64_t min, int64_t max, int64_t *out, char *errstr,
		   size_t errstr_size)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			"%s.%s: expected an integer in [%lld, %lld]", where,
			key, (long long)min, (long long)max);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

/* Reject members other than those listed (catches typos in tests). */
static int only_keys(json_t *obj, const char *where, const char *const *keys,
		     char *errstr, size_t errstr_size)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		bool known = false;
		for (size_t i = 0; keys[i]; i++)
			if (strcmp(key, keys[i]) == 0)
				known = true;
		if (!known) {
			pb_errf(errstr, errstr_size, PB_ERR_INVALID,
				"%s: unknown key \"%.64s\"", where, key);
			return -1;
		}
	}
	return 0;
}

static int parse_fault(const char *kind, json_t *v, pb_sim_fault_t *f,
		       char *errstr, size_t errstr_size)
{
	memset(f, 0, sizeof(*f));
	if (!json_is_object(v)) {
		pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			"%s: expected an object", kind);
		return -1;
	}
	if (get_int(v, kind, "count", 1, 1, SIM_MAX_COUNT, &f->count, errstr,
		    errstr_size) != 0)
		return -1;
	json_t *wo = json_object_get(v, "workOrder");
	if (wo && (!json_is_string(wo) || json_string_length(wo) == 0 ||
		   json_string_length(wo) >= sizeof(f->work_order))) {
		pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			"%s.workOrder: expected a string of 1 to %zu bytes",
			kind, sizeof(f->work_order) - 1);
		return -1;
	}
	if (wo)
		pb_strlcpy(f->work_order, json_string_value(wo),
			   sizeof(f->work_order));
	if (strcmp(kind, "fail") == 0) {
		static const char *const keys[] = {"count", "status",
						   "workOrder", NULL};
		int64_t status;
		f->kind = PB_SIM_FAULT_FAIL;
		if (only_keys(v, kind, keys, errstr, errstr_size) != 0 ||
		    get_int(v, kind, "status", 503, 400, 599, &status, errstr,
			    errstr_size) != 0)
			return -1;
		f->status = (int)status;
	} else if (strcmp(kind, "rateLimit") == 0) {
		static const char *const keys[] = {"count", "retryAfter",
						   "workOrder", NULL};
		f->kind = PB_SIM_FAULT_RATE_LIMIT;
		if (only_keys(v, kind, keys, errstr, errstr_size) != 0 ||
		    get_int(v, kind, "retryAfter", 1, 0, 86400, &f->retry_after,
			    errstr, errstr_size) != 0)
			return -1;
	} else if (strcmp(kind, "timeout") == 0) {
		static const char *const keys[] = {"count", "holdMs", "close",
						   "workOrder", NULL};
		json_t *close = json_object_get(v, "close");
		f->kind = PB_SIM_FAULT_TIMEOUT;
		if (only_keys(v, kind, keys, errstr, errstr_size) != 0 ||
		    get_int(v, kind, "holdMs", 1000, 0, SIM_MAX_MS, &f->hold_ms,
			    errstr, errstr_size) != 0)
			return -1;
		if (close && !json_is_boolean(close)) {
			pb_errf(errstr, errstr_size, PB_ERR_INVALID,
				"timeout.close: expected a boolean");
			return -1;
		}
		f->close = json_is_true(close);
	} else { /* errorNext */
		static const char *const keys[] = {"count", "error",
						   "workOrder", NULL};
		json_t *e = json_object_get(v, "error");
		f->kind = PB_SIM_FAULT_ERROR_NEXT;
		if (only_keys(v, kind, keys, errstr, errstr_size) != 0)
			return -1;
		if (e && (!json_is_string(e) || json_string_length(e) == 0 ||
			  json_string_length(e) >= sizeof(f->error))) {
			pb_errf(errstr, errstr_size, PB_ERR_INVALID,
				"errorNext.error: expected a string of 1 to "
				"%zu bytes",
				sizeof(f->error) - 1);
			return -1;
		}
		pb_strlcpy(f->error,
			   e ? json_string_value(e) : "simulated error",
			   sizeof(f->error));
	}
	return 0;
}

pb_err_t pb_sim_faults_add(pb_sim_t *sim, json_t *spec, char *errstr,
			   size_t errstr_size)
{
	/* One spec arms at most one fault per kind, in the spec's order. */
	pb_sim_fault_t adds[4];
	size_t nadds = 0;
	int64_t latency = -1;
	json_t *reject = NULL;
	const char *key;
	json_t *v;

	if (!json_is_object(spec))
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "expected a JSON object");
	json_object_foreach(spec, key, v)
	{
		if (strcmp(key, "latencyMs") == 0) {
			if (get_int(spec, "faults", key, 0, 0, SIM_MAX_MS,
				    &latency, errstr, errstr_size) != 0)
				return PB_ERR_INVALID;
		} else if (strcmp(key, "rejectWorkOrders") == 0) {
			size_t i;
			json_t *w;
			if (!json_is_array(v) ||
			    json_array_size(v) > SIM_MAX_REJECT)
				return pb_errf(errstr, errstr_size,
					       PB_ERR_INVALID,
					       "rejectWorkOrders: expected an "
					       "array of at most %d strings",
					       SIM_MAX_REJECT);
			json_array_foreach(v, i, w)
			{
				if (!json_is_string(w) ||
				    json_string_length(w) == 0)
					return pb_errf(
					    errstr, errstr_size, PB_ERR_INVALID,
					    "rejectWorkOrders[%zu]: expected "
					    "a non-empty string",
					    i);
			}
			reject = v;
		} else if (strcmp(key, "fail") == 0 ||
			   strcmp(key, "rateLimit") == 0 ||
			   strcmp(key, "timeout") == 0 ||
			   strcmp(key, "errorNext") == 0) {
			if (parse_fault(key, v, &adds[nadds], errstr,
					errstr_size) != 0)
				return PB_ERR_INVALID;
			nadds++;
		} else {
			return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
				       "unknown fault \"%.64s\"", key);
		}
	}

	pb_err_t err = PB_OK;
	pthread_mutex_lock(&sim->mu);
	if (sim->nfaults + nadds > SIM_MAX_FAULTS) {
		err = pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			      "too many armed faults (at most %d)",
			      SIM_MAX_FAULTS);
		goto out;
	}
	if (reject && json_object_size(sim->reject) + json_array_size(reject) >
			  SIM_MAX_REJECT) {
		err = pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			      "too many rejectWorkOrders (at most %d)",
			      SIM_MAX_REJECT);
		goto out;
	}
	for (size_t i = 0; i < nadds; i++)
		sim->faults[sim->nfaults++] = adds[i];
	if (latency >= 0)
		sim->latency_ms = latency;
	size_t i;
	json_array_foreach(reject, i, v)
	{
		if (json_object_set_new(sim->reject, json_string_value(v),
					json_true()) != 0) {
			err = PB_ERR_NOMEM;
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&sim->mu);
	return err;
}

void pb_sim_faults_clear(pb_sim_t *sim)
{
	pthread_mutex_lock(&sim->mu);
	sim->nfaults = 0;
	sim->latency_ms = sim->base_latency_ms;
	json_object_clear(sim->reject);
	pthread_mutex_unlock(&sim->mu);
}

json_t *pb_sim_faults_json(pb_sim_t *sim)
{
	json_t *queue = json_array();
	json_t *reject = json_array();
	json_t *out = NULL;
	if (!queue || !reject)
		goto out;
	pthread_mutex_lock(&sim->mu);
	for (size_t i = 0; i < sim->nfaults; i++) {
		const pb_sim_fault_t *f = &sim->faults[i];
		json_t *e = json_pack("{s:s,s:I}", "kind", fault_name(f->kind),
				      "count", (json_int_t)f->count);
		if (!e)
			continue;
		if (f->kind == PB_SIM_FAULT_FAIL)
			json_object_set_new(e, "status",
					    json_integer(f->status));
		if (f->kind == PB_SIM_FAULT_RATE_LIMIT)
			json_object_set_new(e, "retryAfter",
					    json_integer(f->retry_after));
		if (f->kind == PB_SIM_FAULT_TIMEOUT) {
			json_object_set_new(e, "holdMs",
					    json_integer(f->hold_ms));
			json_object_set_new(e, "close", json_boolean(f->close));
		}
		if (f->kind == PB_SIM_FAULT_ERROR_NEXT)
			json_object_set_new(e, "error", json_string(f->error));
		if (f->work_order[0])
			json_object_set_new(e, "workOrder",
					    json_string(f->work_order));
		json_array_append_new(queue, e);
	}
	const char *won;
	json_t *v;
	json_object_foreach(sim->reject, won, v)
	    json_array_append_new(reject, json_string(won));
	int64_t latency = sim->latency_ms;
	pthread_mutex_unlock(&sim->mu);
	out = json_pack("{s:I,s:O,s:O}", "latencyMs", (json_int_t)latency,
			"queue", queue, "rejectWorkOrders", reject);
out:
	json_decref(queue);
	json_decref(reject);
	return out;
}

/* ---- inspection ------------------------------------------------------- */

/* JSON text of the log (NULL: absent) as a value; NULL when absent. */
static json_t *text_json(const char *text, size_t len)
{
	return text ? json_loadb(text, len, JSON_DECODE_ANY, NULL) : NULL;
}

/* One logged request as JSON (new reference; NULL on NOMEM). */
static json_t *entry_json(const sim_entry_t *e)
{
	char at[40];
	pb_ms_to_rfc3339(e->received_ms, at, sizeof(at));
	json_t *wos = text_json(e->wos, e->wos_len);
	json_t *response =
	    text_json(e->response, e->response ? strlen(e->response) : 0);
	/* "o?" steals wos and response, even on failure */
	return json_pack("{s:I,s:s?,s:s?,s:s,s:o?,s:i,s:o?,s:s?,s:s}", "seq",
			 (json_int_t)e->seq, "apiKey", e->api_key,
			 "contentType", e->content_type, "encoding",
			 e->encoding, "workOrders", wos, "status", e->status,
			 "response", response, "fault", fault_name(e->fault),
			 "receivedAt", at);
}

json_t *pb_sim_requests_json(pb_sim_t *sim, int64_t since, const char *api_key)
{
	json_t *list = json_array();
	if (!list)
		return NULL;
	pthread_mutex_lock(&sim->mu);
	for (size_t i = 0; i < sim->ring_len; i++) {
		const sim_entry_t *e =
		    &sim->ring[(sim->ring_head + i) % sim->max_kept];
		if (e->seq <= since)
			continue;
		if (api_key &&
		    (!e->api_key || strcmp(e->api_key, api_key) != 0))
			continue;
		json_array_append_new(list, entry_json(e));
	}
	pthread_mutex_unlock(&sim->mu);
	return json_pack("{s:o}", "requests", list);
}

json_t *pb_sim_orders_json(pb_sim_t *sim, const char *api_key)
{
	pthread_mutex_lock(&sim->mu);
	json_t *orders = pb_sim_store_orders_json(
	    pb_sim_store_account(sim->store, api_key, false));
	pthread_mutex_unlock(&sim->mu);
	return json_pack("{s:o}", "orders", orders);
}

json_t *pb_sim_stats_json(pb_sim_t *sim)
{
	json_t *by = json_object();
	if (!by)
		return NULL;
	pthread_mutex_lock(&sim->mu);
	for (int s = 0; s < SIM_MAX_STATUS; s++) {
		if (!sim->by_status[s])
			continue;
		char name[16];
		if (s == 0)
			pb_strlcpy(name, "closed", sizeof(name));
		else
			snprintf(name, sizeof(name), "%d", s);
		json_object_set_new(by, name, json_integer(sim->by_status[s]));
	}
	json_t *out = json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "requests",
	    (json_int_t)sim->requests, "workOrders",
	    (json_int_t)sim->work_orders, "created", (json_int_t)sim->created,
	    "updated", (json_int_t)sim->updated, "deleted",
	    (json_int_t)sim->deleted, "refused", (json_int_t)sim->refused,
	    "faulted", (json_int_t)sim->faulted, "refreshes",
	    (json_int_t)sim->refreshes, "kept", (json_int_t)sim->ring_len,
	    "dropped", (json_int_t)sim->dropped, "byStatus", by);
	pthread_mutex_unlock(&sim->mu);
	return out;
}

void pb_sim_reset(pb_sim_t *sim)
{
	pthread_mutex_lock(&sim->mu);
	ring_clear(sim);
	pb_sim_store_clear(sim->store);
	json_object_clear(sim->reject);
	sim->nfaults = 0;
	sim->latency_ms = sim->base_latency_ms;
	sim->seq = 0;
	sim->requests = sim->work_orders = sim->created = sim->updated = 0;
	sim->deleted = sim->refused = sim->faulted = sim->refreshes = 0;
	sim->dropped = 0;
	memset(sim->by_status, 0, sizeof(sim->by_status));
	pthread_mutex_unlock(&sim->mu);
}
