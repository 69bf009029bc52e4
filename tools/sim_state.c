/*
 * sim_state.c: the Pruvan model behind pruvan-sim (see sim_state.h).
 *
 * The store is JSON all the way down: store[apiKey][workOrderNumber] is the
 * order as Pruvan would hold it (every field ever pushed, merged) plus our
 * bookkeeping keys "_created", "_updated", "_deleted" (how many times each
 * effect happened) and "_isDeleted". Pushed fields whose names start with
 * '_' are ignored so a client can never overwrite the bookkeeping.
 *
 * A batch is decided in two passes under the mutex: plan (classify each
 * order as create, update or delete against the store *and* the orders
 * earlier in the same batch, validate creates, check the reject list), then
 * apply only if the plan found nothing wrong. That is what makes a batch all
 * or nothing, as Pruvan answers for a batch as a whole.
 */
#include "sim_state.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define SIM_MAX_FAULTS 256     /* armed fault entries */
#define SIM_MAX_COUNT  1000000 /* requests one fault entry may cover */
#define SIM_MAX_MS     600000  /* latency and hold bound: ten minutes */
#define SIM_MAX_REJECT 10000   /* rejectWorkOrders entries */
#define SIM_MAX_STATUS 600     /* byStatus counters, index 0 = closed */

enum sim_action { ACT_CREATE, ACT_UPDATE, ACT_DELETE };

struct pb_sim {
	pthread_mutex_t mu;
	int64_t base_latency_ms; /* from the CLI; restored by a clear */
	int64_t latency_ms;

	/* Armed faults, FIFO: faults[0] is consumed first. */
	pb_sim_fault_t faults[SIM_MAX_FAULTS];
	size_t nfaults;
	json_t *reject; /* object used as a set of workOrderNumbers */

	json_t *store; /* apiKey -> { workOrderNumber -> record } */

	/* Request log: a ring of max_kept entries, oldest at ring_head. */
	json_t **ring;
	size_t max_kept, ring_head, ring_len;
	int64_t seq;

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
	sim->store = json_object();
	if (!sim->ring || !sim->reject || !sim->store)
		goto out_fail;
	if (pthread_mutex_init(&sim->mu, NULL) != 0)
		goto out_fail;
	return sim;
out_fail:
	free(sim->ring);
	json_decref(sim->reject);
	json_decref(sim->store);
	free(sim);
	return NULL;
}

static void ring_clear(pb_sim_t *sim)
{
	for (size_t i = 0; i < sim->ring_len; i++)
		json_decref(sim->ring[(sim->ring_head + i) % sim->max_kept]);
	sim->ring_head = sim->ring_len = 0;
}

void pb_sim_destroy(pb_sim_t *sim)
{
	if (!sim)
		return;
	ring_clear(sim);
	free(sim->ring);
	json_decref(sim->reject);
	json_decref(sim->store);
	pthread_mutex_destroy(&sim->mu);
	free(sim);
}

/* Does fault f apply to a request carrying work_orders? */
static bool fault_applies(const pb_sim_fault_t *f, const json_t *work_orders)
{
	if (!f->work_order[0])
		return true;
	size_t i;
	json_t *o;
	json_array_foreach(work_orders, i, o)
	{
		const char *won =
		    json_string_value(json_object_get(o, "workOrderNumber"));
		if (won && strcmp(won, f->work_order) == 0)
			return true;
	}
	return false;
}

void pb_sim_arrive(pb_sim_t *sim, const json_t *work_orders,
		   pb_sim_fault_t *fault_out, int64_t *latency_ms_out)
{
	pthread_mutex_lock(&sim->mu);
	memset(fault_out, 0, sizeof(*fault_out));
	for (size_t i = 0; i < sim->nfaults; i++) {
		if (!fault_applies(&sim->faults[i], work_orders))
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

static json_t *counts_answer(int64_t c, int64_t u, int64_t d, const char *error)
{
	return json_pack("{s:{s:I,s:I,s:I},s:s?}", "response", "created",
			 (json_int_t)c, "updated", (json_int_t)u, "deleted",
			 (json_int_t)d, "error", error);
}

/* ---- planning and applying a batch ------------------------------------ */

static bool nonempty_string(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) && json_string_length(v) > 0;
}

static bool valid_state(const char *s)
{
	return strlen(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' &&
	       s[1] <= 'Z';
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* 5-digit ZIP or ZIP+4, as a "valid US address" needs. */
static bool valid_zip(const char *s)
{
	size_t n = strlen(s);
	if (n == 5)
		return all_digits(s, 5);
	return n == 10 && all_digits(s, 5) && s[5] == '-' &&
	       all_digits(s + 6, 4);
}

static void append_problem(char *buf, size_t size, const char *what)
{
	size_t used = strlen(buf);
	if (used >= size)
		return;
	snprintf(buf + used, size - used, "%s%s", used ? ", " : "", what);
}

/*
 * Pruvan's minimum for a create: workOrderNumber, a valid address
 * (address1, city, two-letter state, ZIP or ZIP+4) and at least one service
 * with a non-empty serviceName. Writes the problems into buf ("" if none).
 */
static void check_create(json_t *o, char *buf, size_t size)
{
	buf[0] = '\0';
	static const char *const required[] = {"address1", "city", "state",
					       "zip"};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (!nonempty_string(o, required[i])) {
			char what[32];
			snprintf(what, sizeof(what), "missing %s", required[i]);
			append_problem(buf, size, what);
		}
	}
	if (nonempty_string(o, "state") &&
	    !valid_state(json_string_value(json_object_get(o, "state"))))
		append_problem(buf, size, "invalid state");
	if (nonempty_string(o, "zip") &&
	    !valid_zip(json_string_value(json_object_get(o, "zip"))))
		append_problem(buf, size, "invalid zip");

	json_t *services = json_object_get(o, "services");
	size_t i;
	json_t *svc;
	bool named = false;
	json_array_foreach(services, i, svc)
	{
		if (json_is_object(svc) && nonempty_string(svc, "serviceName"))
			named = true;
	}
	if (!json_is_array(services) || json_array_size(services) == 0)
		append_problem(buf, size, "missing services");
	else if (!named)
		append_problem(buf, size, "no service with a serviceName");
}

/*
 * Classify every order of the batch into actions[]; 0 if the batch may be
 * applied, else -1 with the error text in err. 'pending' tracks orders
 * earlier in this batch (workOrderNumber -> true if live) so that a create
 * followed by an update of the same order counts as one of each.
 */
static int plan_batch(pb_sim_t *sim, json_t *orders_of_key, json_t *batch,
		      enum sim_action *actions, char *err, size_t err_size)
{
	int ret = -1;
	json_t *pending = json_object();
	if (!pending) {
		snprintf(err, err_size, "simulator out of memory");
		return -1;
	}
	size_t i;
	json_t *o;
	json_array_foreach(batch, i, o)
	{
		if (!json_is_object(o)) {
			snprintf(err, err_size,
				 "workOrders[%zu]: not an object", i);
			goto out;
		}
		if (!nonempty_string(o, "workOrderNumber")) {
			snprintf(err, err_size,
				 "workOrders[%zu]: missing workOrderNumber", i);
			goto out;
		}
		const char *won =
		    json_string_value(json_object_get(o, "workOrderNumber"));
		if (json_object_get(sim->reject, won)) {
			snprintf(err, err_size,
				 "%.200s: rejected by simulator "
				 "(rejectWorkOrders)",
				 won);
			goto out;
		}
		json_t *status = json_object_get(o, "status");
		if (json_is_string(status) &&
		    strcasecmp(json_string_value(status), "deleted") == 0) {
			actions[i] = ACT_DELETE;
			json_object_set_new(pending, won, json_false());
			continue;
		}
		json_t *seen = json_object_get(pending, won);
		bool live;
		if (seen) {
			live = json_is_true(seen);
		} else {
			json_t *rec = json_object_get(orders_of_key, won);
			live = rec && !json_is_true(
					  json_object_get(rec, "_isDeleted"));
		}
		if (live) {
			actions[i] = ACT_UPDATE;
			continue;
		}
		char problems[256];
		check_create(o, problems, sizeof(problems));
		if (problems[0]) {
			snprintf(err, err_size, "%.200s: %s", won, problems);
			goto out;
		}
		actions[i] = ACT_CREATE;
		json_object_set_new(pending, won, json_true());
	}
	ret = 0;
out:
	json_decref(pending);
	return ret;
}

static void bump(json_t *rec, const char *key)
{
	json_int_t n = json_integer_value(json_object_get(rec, key));
	json_object_set_new(rec, key, json_integer(n + 1));
}

/* Set the pushed fields in rec, leaving our '_' bookkeeping alone. The
 * values are shared with the recorded request, not copied: neither is
 * changed once received (a copy of each was half the simulator's CPU in
 * the benchmark, where it shares the machine with the worker). */
static pb_err_t merge_fields(json_t *rec, json_t *order)
{
	const char *key;
	json_t *value;
	json_object_foreach(order, key, value)
	{
		if (key[0] == '_')
			continue;
		if (json_object_set(rec, key, value) != 0)
			return PB_ERR_NOMEM;
	}
	return PB_OK;
}

/* A create over a deleted order starts from a clean record. */
static void drop_fields(json_t *rec)
{
	const char *key;
	json_t *value;
	void *tmp;
	json_object_foreach_safe(rec, tmp, key, value)
	{
		if (key[0] != '_')
			json_object_del(rec, key);
	}
}

static pb_err_t apply_batch(json_t *orders_of_key, json_t *batch,
			    const enum sim_action *actions, int64_t *c,
			    int64_t *u, int64_t *d)
{
	size_t i;
	json_t *o;
	json_array_foreach(batch, i, o)
	{
		const char *won =
		    json_string_value(json_object_get(o, "workOrderNumber"));
		json_t *rec = json_object_get(orders_of_key, won);
		if (!rec) {
			rec = json_pack("{s:i,s:i,s:i,s:b}", "_created", 0,
					"_updated", 0, "_deleted", 0,
					"_isDeleted", 0);
			if (!rec ||
			    json_object_set_new(orders_of_key, won, rec) != 0)
				return PB_ERR_NOMEM;
		}
		switch (actions[i]) {
		case ACT_CREATE:
			drop_fields(rec);
			bump(rec, "_created");
			json_object_set_new(rec, "_isDeleted", json_false());
			(*c)++;
			break;
		case ACT_UPDATE:
			bump(rec, "_updated");
			(*u)++;
			break;
		case ACT_DELETE:
			bump(rec, "_deleted");
			json_object_set_new(rec, "_isDeleted", json_true());
			(*d)++;
			break;
		}
		if (merge_fields(rec, o) != PB_OK)
			return PB_ERR_NOMEM;
	}
	return PB_OK;
}

/* ---- recording -------------------------------------------------------- */

/* Append an entry to the ring (steals entry), dropping the oldest. */
static void ring_push(pb_sim_t *sim, json_t *entry)
{
	if (sim->ring_len == sim->max_kept) {
		json_decref(sim->ring[sim->ring_head]);
		sim->ring[sim->ring_head] = entry;
		sim->ring_head = (sim->ring_head + 1) % sim->max_kept;
		sim->dropped++;
		return;
	}
	sim->ring[(sim->ring_head + sim->ring_len) % sim->max_kept] = entry;
	sim->ring_len++;
}

/* Record a push and serialise its answer. Steals work_orders. */
static pb_err_t record(pb_sim_t *sim, pb_sim_push_t *push, json_t *work_orders,
		       int status, json_t *response, pb_sim_answer_t *answer)
{
	pb_err_t err = PB_ERR_NOMEM;
	char at[40];
	pb_ms_to_rfc3339(push->received_ms, at, sizeof(at));
	sim->requests++;
	sim->by_status[status > 0 && status < SIM_MAX_STATUS ? status : 0]++;
	json_t *entry =
	    json_pack("{s:I,s:s?,s:s?,s:s,s:o?,s:i,s:O?,s:s?,s:s}", "seq",
		      (json_int_t)++sim->seq, "apiKey",
		      push->api_key && push->api_key[0] ? push->api_key : NULL,
		      "contentType", push->content_type, "encoding",
		      push->encoding ? push->encoding : "json", "workOrders",
		      work_orders, "status", status, "response", response,
		      "fault", fault_name(push->fault.kind), "receivedAt", at);
	/* json_pack's "o" stole work_orders, even on failure. */
	if (!entry)
		goto out;
	ring_push(sim, entry);
	answer->status = status;
	if (response) {
		answer->body = json_dumps(response, JSON_COMPACT);
		if (!answer->body)
			goto out;
	}
	err = PB_OK;
out:
	return err;
}

pb_err_t pb_sim_push(pb_sim_t *sim, pb_sim_push_t *push,
		     pb_sim_answer_t *answer)
{
	pb_err_t err = PB_ERR_NOMEM;
	json_t *wos = push->work_orders;
	push->work_orders = NULL;
	json_t *response = NULL;
	enum sim_action *actions = NULL;
	int status = 200;
	char errbuf[512];
	memset(answer, 0, sizeof(*answer));

	pthread_mutex_lock(&sim->mu);
	if (json_is_array(wos))
		sim->work_orders += (int64_t)json_array_size(wos);

	/* Faults first: they stand for trouble in front of the application. */
	switch (push->fault.kind) {
	case PB_SIM_FAULT_FAIL:
		snprintf(errbuf, sizeof(errbuf), "simulated %d",
			 push->fault.status);
		status = push->fault.status;
		response = json_pack("{s:n,s:s}", "response", "error", errbuf);
		sim->faulted++;
		goto out_record;
	case PB_SIM_FAULT_RATE_LIMIT:
		status = 429;
		answer->retry_after = push->fault.retry_after;
		response = json_pack("{s:n,s:s}", "response", "error",
				     "simulated 429");
		sim->faulted++;
		goto out_record;
	case PB_SIM_FAULT_ERROR_NEXT:
		response = counts_answer(0, 0, 0, push->fault.error);
		sim->faulted++;
		goto out_record;
	case PB_SIM_FAULT_TIMEOUT:
		sim->faulted++;
		if (push->fault.close) {
			status = 0;
			goto out_record;
		}
		break;
	case PB_SIM_FAULT_NONE:
		break;
	}

	if (push->reject_status) {
		status = push->reject_status;
		response = counts_answer(0, 0, 0, push->reject_error);
		sim->refused++;
		goto out_record;
	}
	if (!push->api_key || !push->api_key[0]) {
		response = counts_answer(0, 0, 0, "invalid apiKey");
		sim->refused++;
		goto out_record;
	}
	if (!json_is_array(wos)) {
		response =
		    counts_answer(0, 0, 0, "workOrders must be an array");
		sim->refused++;
		goto out_record;
	}

	json_t *orders_of_key = json_object_get(sim->store, push->api_key);
	if (!orders_of_key) {
		orders_of_key = json_object();
		if (!orders_of_key ||
		    json_object_set_new(sim->store, push->api_key,
					orders_of_key) != 0)
			goto out_unlock;
	}
	size_t n = json_array_size(wos);
	actions = calloc(n ? n : 1, sizeof(*actions));
	if (!actions)
		goto out_unlock;
	if (plan_batch(sim, orders_of_key, wos, actions, errbuf,
		       sizeof(errbuf)) != 0) {
		response = counts_answer(0, 0, 0, errbuf);
		sim->refused++;
		goto out_record;
	}
	int64_t c = 0, u = 0, d = 0;
	if (apply_batch(orders_of_key, wos, actions, &c, &u, &d) != PB_OK)
		goto out_unlock;
	sim->created += c;
	sim->updated += u;
	sim->deleted += d;
	response = counts_answer(c, u, d, NULL);

out_record:
	if (status != 0 && !response)
		goto out_unlock;
	err = record(sim, push, wos, status, response, answer);
	wos = NULL; /* record stole it */
out_unlock:
	pthread_mutex_unlock(&sim->mu);
	json_decref(wos);
	json_decref(response);
	free(actions);
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

json_t *pb_sim_requests_json(pb_sim_t *sim, int64_t since, const char *api_key)
{
	json_t *list = json_array();
	if (!list)
		return NULL;
	pthread_mutex_lock(&sim->mu);
	for (size_t i = 0; i < sim->ring_len; i++) {
		json_t *e = sim->ring[(sim->ring_head + i) % sim->max_kept];
		if (json_integer_value(json_object_get(e, "seq")) <= since)
			continue;
		if (api_key) {
			const char *k =
			    json_string_value(json_object_get(e, "apiKey"));
			if (!k || strcmp(k, api_key) != 0)
				continue;
		}
		/* A copy, so the caller can dump it after we unlock. */
		json_array_append_new(list, json_deep_copy(e));
	}
	pthread_mutex_unlock(&sim->mu);
	return json_pack("{s:o}", "requests", list);
}

json_t *pb_sim_orders_json(pb_sim_t *sim, const char *api_key)
{
	pthread_mutex_lock(&sim->mu);
	json_t *orders = json_object_get(sim->store, api_key);
	json_t *copy = orders ? json_deep_copy(orders) : json_object();
	pthread_mutex_unlock(&sim->mu);
	return json_pack("{s:o}", "orders", copy);
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
	json_object_clear(sim->store);
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
