/*
 * stages.c: everything the loop asks of Redis.
 *
 * Records of decided events, "published" marks of acknowledged outcomes
 * and fetches of ready events go to Redis in pipelined stages, up to
 * MAX_FLIGHTS in flight, applied in the order written (pl_redis_stage).
 * Whole calls (ping, the Auto-Admin switches and learned PushKeys, marks
 * at shutdown) first settle every stage in flight. A Redis failure drops
 * the stages in flight; their tasks stay listed and go again once Redis
 * answers (redis_failed backs off, the loop pauses consumption).
 *
 * Must never: let a fetch overtake the marks written before it, or log a
 * learned PushKey.
 */
#include "pipeline_internal.h"

void pl_pubmark_add(pb_pipeline_t *pl, task_t *t)
{
	if (pl->stages.pubmarks_len >= PUBLISH_MARK_MAX)
		return; /* bounded: a lost mark only re-publishes on replay */
	if (pl->stages.pubmarks_len == pl->stages.pubmarks_cap) {
		size_t nc =
		    pl->stages.pubmarks_cap ? pl->stages.pubmarks_cap * 2 : 256;
		pubmark_t *n = realloc(pl->stages.pubmarks, nc * sizeof(*n));
		if (!n)
			return;
		pl->stages.pubmarks = n;
		pl->stages.pubmarks_cap = nc;
	}
	pubmark_t *p = &pl->stages.pubmarks[pl->stages.pubmarks_len++];
	/* the three names in one block, owned by p->account */
	const char *a = pl_task_mark_account(t), *w = pl_task_mark_won(t),
		   *id = pl_task_mark_id(t);
	size_t la = strlen(a) + 1, lw = strlen(w) + 1, li = strlen(id) + 1;
	char *names = malloc(la + lw + li);
	if (!names) {
		/* as at the bound: a lost mark only re-publishes on replay */
		pl->stages.pubmarks_len--;
		return;
	}
	p->account = memcpy(names, a, la);
	p->won = memcpy(names + la, w, lw);
	p->event_id = memcpy(names + la + lw, id, li);
	p->ref.account = p->account;
	p->ref.won = p->won;
	p->ref.event_id = p->event_id;
	/* the mark as recorded (pl_redis_stage), now published */
	p->ref.outcome = pb_outcome_name(t->outcome); /* names: state.h */
	p->ref.reason = pl_reason_name_or_null(t->reason);
	p->ref.http_status = (int)t->job.http_status;
	p->ref.attempts = t->job.attempts;
}

/* Forget the first n pending marks (written, or the worker is going);
 * the ones added after them stay, in order. */
void pl_pubmarks_drop(pb_pipeline_t *pl, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(pl->stages.pubmarks[i].account); /* and won, event_id */
	}
	if (n) {
		memmove(pl->stages.pubmarks, pl->stages.pubmarks + n,
			(pl->stages.pubmarks_len - n) *
			    sizeof(*pl->stages.pubmarks));
		pl->stages.pubmarks_len -= n;
	}
}

void pl_redis_failed(pb_pipeline_t *pl, const char *what, const char *err)
{
	pb_metrics_add(pl->m, PB_M_REDIS_ERRORS, "", 1);
	if (pl->redis_up)
		pb_log(PB_LOG_ERROR,
		       "Redis unreachable; pausing consumption "
		       "and retrying (check REDIS_URL and that Redis is up)",
		       "during", what, "error", err, NULL);
	pl->redis_up = false;
	atomic_store(&pl->ready_redis, 0);
	pl->redis_backoff_ms =
	    pl->redis_backoff_ms
		? (pl->redis_backoff_ms * 2 > 5000 ? 5000
						   : pl->redis_backoff_ms * 2)
		: 100;
	pl->redis_retry_at = pb_mono_ms() + pl->redis_backoff_ms;
}

void pl_redis_ok(pb_pipeline_t *pl, int64_t started)
{
	pb_metrics_observe(pl->m, PB_M_REDIS_RTT, "",
			   (double)(pb_mono_ms() - started) / 1000.0);
	if (!pl->redis_up)
		pb_log(PB_LOG_INFO, "Redis reachable again; resuming", NULL);
	pl->redis_up = true;
	pl->redis_ok_at = pb_mono_ms();
	pl->redis_backoff_ms = 0;
	atomic_store(&pl->ready_redis, 1);
}

bool pl_redis_may_try(pb_pipeline_t *pl)
{
	return pl->redis_up || pb_mono_ms() >= pl->redis_retry_at;
}

static bool auto_admin_due(const pb_pipeline_t *pl)
{
	return pl->cfg->accounts_len &&
	       pb_mono_ms() - pl->auto_admin_at >= 1000;
}

/*
 * The URL a learned PushKey is pushed to: the key itself when Pruvan sent
 * a URL on pruvan.apiUrl's origin, else pruvan.apiUrl?apiKey=KEY (the key
 * percent-encoded); NULL for a URL elsewhere (the relay refuses such a
 * validate; one stored by an earlier build is not used) or out of memory.
 */
static char *learned_push_url(const pb_config_t *c, const char *key)
{
	if (pb_url_authority(key))
		return pb_url_same_origin(key, c->pruvan_api_url) ? strdup(key)
								  : NULL;
	char *enc = curl_easy_escape(NULL, key, 0);
	if (!enc)
		return NULL;
	size_t n = strlen(c->pruvan_api_url) + strlen(enc) + 10;
	char *url = malloc(n);
	if (url)
		snprintf(url, n, "%s?apiKey=%s", c->pruvan_api_url, enc);
	curl_free(enc);
	return url;
}

/* A learned PushKey that is a URL off pruvan.apiUrl's origin (stored by
 * an earlier build: the relay refuses it now): not used, said once. */
static void push_key_refuse(pb_pipeline_t *pl, size_t i, char *key_take)
{
	char **last = &pl->push_keys_refused[i];
	if (*last && strcmp(*last, key_take) == 0) {
		free(key_take);
		return;
	}
	free(*last);
	*last = key_take;
	pb_log(PB_LOG_WARN,
	       "learned PushKey not used: a URL off pruvan.apiUrl's host",
	       "account", pl->cfg->accounts[i].name, "what_to_do",
	       "validate again from Pruvan's integration setup, or set "
	       "pruvan.apiUrl to the host Pruvan pushes to",
	       NULL);
}

/* One account's key as read: a change goes to the pusher at once (the
 * next request uses it), never to a log. */
static void push_key_apply(pb_pipeline_t *pl, size_t i, char *key_take,
			   int64_t at_ms)
{
	const pb_account_t *a = &pl->cfg->accounts[i];
	char lbl[300];
	pb_metrics_labels(lbl, sizeof(lbl), "account", a->name, NULL);
	if (at_ms > 0)
		pb_metrics_set(pl->m, PB_M_PUSH_KEY_LEARNED, lbl,
			       (double)at_ms / 1000.0);
	if (!key_take ||
	    (pl->push_keys[i] && strcmp(pl->push_keys[i], key_take) == 0)) {
		free(key_take);
		return;
	}
	char *url = learned_push_url(pl->cfg, key_take);
	if (!url && pb_url_authority(key_take)) {
		push_key_refuse(pl, i, key_take);
		return;
	}
	if (!url || pb_pusher_set_url(pl->pusher, a, url) != PB_OK) {
		free(url);
		free(key_take);
		return; /* out of memory: the next refresh tries again */
	}
	free(url);
	pb_log(PB_LOG_INFO,
	       pl->push_keys[i] ? "learned PushKey changed: pushing with "
				  "the new one"
				: "learned PushKey in use",
	       "account", a->name, NULL);
	free(pl->push_keys[i]);
	pl->push_keys[i] = key_take;
}

/* The learned PushKeys of the accounts configured "pruvan:validate". */
static void refresh_push_keys(pb_pipeline_t *pl, const char **names)
{
	const pb_config_t *c = pl->cfg;
	size_t n = 0;
	for (size_t i = 0; i < c->accounts_len; i++)
		n += c->accounts[i].push_key_learned;
	if (n == 0)
		return;
	char **keys = calloc(c->accounts_len, sizeof(*keys));
	int64_t *at = calloc(c->accounts_len, sizeof(*at));
	char err[256];
	if (keys && at &&
	    pb_state_get_push_keys(pl->state, names, c->accounts_len, keys, at,
				   err, sizeof(err)) == PB_OK) {
		int missing = 0, first = -1;
		for (size_t i = 0; i < c->accounts_len; i++) {
			if (!c->accounts[i].push_key_learned) {
				free(keys[i]);
				continue;
			}
			push_key_apply(pl, i, keys[i], at[i]);
			if (!pl->push_keys[i] && missing++ == 0)
				first = (int)i;
		}
		atomic_store(&pl->key_missing_first, first);
		atomic_store(&pl->keys_missing, missing);
	}
	free(keys);
	free(at);
}

void pl_refresh_auto_admin(pb_pipeline_t *pl)
{
	const pb_config_t *c = pl->cfg;
	if (!auto_admin_due(pl))
		return;
	const char **names = calloc(c->accounts_len, sizeof(*names));
	int *vals = calloc(c->accounts_len, sizeof(*vals));
	if (!names || !vals)
		goto out;
	for (size_t i = 0; i < c->accounts_len; i++)
		names[i] = c->accounts[i].name;
	char err[256];
	if (pb_state_get_auto_admin(pl->state, names, c->accounts_len, vals,
				    err, sizeof(err)) == PB_OK) {
		for (size_t i = 0; i < c->accounts_len; i++) {
			int on =
			    vals[i] < 0 ? c->accounts[i].auto_admin : vals[i];
			if (pl->auto_admin[i] != on && pl->auto_admin_at)
				pb_log(PB_LOG_INFO,
				       on ? "Auto-Admin switched on"
					  : "Auto-Admin switched off",
				       "account", c->accounts[i].name, NULL);
			pl->auto_admin[i] = on;
			char lbl[300];
			pb_metrics_labels(lbl, sizeof(lbl), "account",
					  c->accounts[i].name, NULL);
			pb_metrics_set(pl->m, PB_M_AUTO_ADMIN, lbl, on);
		}
		pl->auto_admin_at = pb_mono_ms();
		refresh_push_keys(pl, names);
	}
out:
	free(names);
	free(vals);
}

int pl_auto_admin_of(pb_pipeline_t *pl, const pb_account_t *a)
{
	size_t i = (size_t)(a - pl->cfg->accounts);
	return pl->auto_admin[i] < 0 ? a->auto_admin : pl->auto_admin[i];
}

static void overlap_work(pb_pipeline_t *pl, overlap_t *o)
{
	for (size_t i = 0; o && i < o->n; i++)
		pl_consume_one(pl, o->msgs[i]);
	pl_publish_stage(pl);
}

/* Free the tasks held back for stages up to seq (see pl_task_finish). */
static void free_lingering(pb_pipeline_t *pl, uint64_t seq)
{
	if (seq > pl->stages.applied_seq)
		pl->stages.applied_seq = seq;
	while (pl->lingering.head &&
	       pl->lingering.head->linger_seq <= pl->stages.applied_seq)
		pl_task_free(pl, pl_list_pop(&pl->lingering));
}

/* Forget a stage whose replies will not be applied. */
static void stage_discard(pb_pipeline_t *pl, stage_t *s)
{
	uint64_t seq = s->seq;
	for (size_t i = 0; s->views && i < s->nfetch; i++)
		pb_state_view_clear(&s->views[i]);
	free(s->views);
	memset(s, 0, sizeof(*s));
	free_lingering(pl, seq);
}

/* Forget every stage in flight (their replies are lost). */
void pl_stages_discard(pb_pipeline_t *pl)
{
	while (pl->stages.nflights)
		stage_discard(pl, &pl->stages.flights[--pl->stages.nflights]);
}

/* What the stages in flight carry: the first *nrec of to_record, *nmark
 * of the pending marks and *nfetch of ready. */
static void in_flight(const pb_pipeline_t *pl, size_t *nrec, size_t *nmark,
		      size_t *nfetch)
{
	*nrec = *nmark = *nfetch = 0;
	for (size_t i = 0; i < pl->stages.nflights; i++) {
		*nrec += pl->stages.flights[i].nrec;
		*nmark += pl->stages.flights[i].nmark;
		*nfetch += pl->stages.flights[i].nfetch;
	}
}

/* Work for a stage not yet written. */
bool pl_stage_wanted(const pb_pipeline_t *pl)
{
	size_t nrec, nmark, nfetch;
	in_flight(pl, &nrec, &nmark, &nfetch);
	return pl->to_record.n > nrec || pl->stages.pubmarks_len > nmark ||
	       pl->ready.n > nfetch;
}

/* The first task of to_record (rec) or ready that no stage in flight
 * carries: the one after the last task the newest stage carrying any of
 * that list took, else the list's head. Stages take from the heads in
 * order, and a carried task stays listed, in place, until its stage is
 * applied (the lists are rebuilt only with no stage in flight), so this
 * is the task past the skipped ones without walking the list: each step
 * of that walk was a cache miss on a task. */
static task_t *first_uncarried(const pb_pipeline_t *pl, bool rec)
{
	for (size_t i = pl->stages.nflights; i-- > 0;) {
		const stage_t *s = &pl->stages.flights[i];
		task_t *last = rec ? s->rec_last : s->fetch_last;
		if (last)
			return last->next;
	}
	return rec ? pl->to_record.head : pl->ready.head;
}

/* What recording t writes to Redis: its mark, with the outcome and reason
 * by name (the state API's spelling), and its order's new state. */
static void write_of(const task_t *t, pb_state_write_t *w)
{
	w->account = pl_task_mark_account(t);
	w->won = pl_task_mark_won(t);
	w->event_id = pl_task_mark_id(t);
	w->outcome = pb_outcome_name(t->outcome);
	w->reason = pl_reason_name_or_null(t->reason);
	w->http_status = (int)t->job.http_status;
	w->attempts = t->job.attempts;
	w->write_order = t->write_order;
	w->set_created = t->set_created;
	w->set_deleted = t->set_deleted;
	if (t->ev && t->write_order) {
		w->has_version = t->ev->has_version;
		w->version = t->ev->version;
		w->occurred_ms = t->ev->occurred_ms;
		w->pushed = t->dec_set ? t->dec.pushed_after : NULL;
	}
	w->learn_key1 = t->learn_key1;
	w->deleted_key1 = t->deleted_key1;
	w->recreated_key1 = t->recreated_key1;
	w->deleted_swo_id = t->deleted_swo_id;
	w->deleted_swo_number = t->deleted_swo_number;
	/* what the decision read: order fields already holding the value
	 * are not written again */
	w->fetched = t->view_set ? &t->view : NULL;
}

/*
 * Write a stage: the records of finished pushes, the "published" marks of
 * acknowledged outcomes and the fetch of ready events, in that order (a
 * fetch sees the marks written before it), taken from the lists past what
 * the stages in flight carry. A failure drops the connection, and the
 * stages in flight fail with it.
 */
static void stage_send(pb_pipeline_t *pl)
{
	if (pl->stages.nflights == MAX_FLIGHTS || !pl_redis_may_try(pl))
		return;
	size_t rec_skip, mark_skip, fetch_skip;
	in_flight(pl, &rec_skip, &mark_skip, &fetch_skip);
	size_t nrec = pl->to_record.n - rec_skip;
	size_t nmark = pl->stages.pubmarks_len - mark_skip;
	size_t nfetch = pl->ready.n - fetch_skip;
	if (nrec + nmark + nfetch == 0)
		return;
	if (nrec > RECORD_BATCH)
		nrec = RECORD_BATCH;
	if (nfetch > FETCH_BATCH)
		nfetch = FETCH_BATCH;
	pb_state_write_t *w = calloc(nrec + 1, sizeof(*w));
	pb_state_ref_t *refs = calloc(nmark + 1, sizeof(*refs));
	pb_state_view_t *views = calloc(nfetch + 1, sizeof(*views));
	if (!w || !refs || !views) {
		free(w);
		free(refs);
		free(views);
		return;
	}
	task_t *rec_last = NULL, *fetch_last = NULL;
	task_t *t = first_uncarried(pl, true);
	for (size_t i = 0; i < nrec; i++, t = t->next) {
		write_of(t, &w[i]);
		rec_last = t;
	}
	for (size_t i = 0; i < nmark; i++)
		refs[i] = pl->stages.pubmarks[mark_skip + i].ref;
	t = first_uncarried(pl, false);
	for (size_t i = 0; i < nfetch; i++, t = t->next) {
		views[i].account = pl_task_mark_account(t);
		views[i].won = pl_task_mark_won(t);
		views[i].event_id = pl_task_mark_id(t);
		views[i].key1 = t->in ? t->in->key1 : NULL;
		views[i].swo_id = t->in ? t->in->source_wo_id : NULL;
		views[i].swo_number = t->in ? t->in->source_wo_number : NULL;
		views[i].skip_key1 =
		    t->ev && !pb_rules_may_push_delete(t->ev, t->acct);
		fetch_last = t;
	}
	stage_t *s = &pl->stages.flights[pl->stages.nflights];
	memset(s, 0, sizeof(*s));
	char err[512];
	const char *what = "record";
	int64_t started = pb_mono_ms();
	pb_err_t e = pb_state_commit_send(pl->state, w, nrec, &s->crec, err,
					  sizeof(err));
	if (!e) {
		what = "mark published";
		e = pb_state_mark_published_send(pl->state, refs, nmark,
						 &s->cmark, err, sizeof(err));
	}
	if (!e) {
		what = "fetch";
		e = pb_state_fetch_send(pl->state, views, nfetch, &s->cfetch,
					err, sizeof(err));
	}
	if (!e) {
		what = "write";
		e = pb_state_flush(pl->state, err, sizeof(err));
	}
	free(w);
	free(refs);
	if (e) {
		pl_redis_failed(pl, what, err);
		free(views);
		memset(s, 0, sizeof(*s));
		return;
	}
	s->seq = ++pl->stages.stage_seq;
	s->nrec = nrec;
	s->nmark = nmark;
	s->nfetch = nfetch;
	s->rec_last = rec_last;
	s->fetch_last = fetch_last;
	s->views = views;
	s->spent_ms = pb_mono_ms() - started;
	pl->stages.nflights++;
}

static bool stage_ready(pb_pipeline_t *pl)
{
	const stage_t *s = &pl->stages.flights[0];
	pb_state_call_t calls[3] = {s->crec, s->cmark, s->cfetch};
	return pb_state_ready(pl->state, calls, 3);
}

/*
 * Read the replies of the oldest stage in flight (waiting for them unless
 * wait is false and they are not in yet) and apply them: recorded tasks go
 * on to publish (their order's next event may go), written marks are
 * forgotten, fetched events are decided. The first failure drops the
 * connection and leaves the rest unapplied: their tasks stay listed and go
 * in a later stage, and every later stage in flight is discarded, as its
 * replies are lost with the connection. False when nothing was applied.
 */
static bool stage_apply(pb_pipeline_t *pl, bool wait)
{
	if (!pl->stages.nflights)
		return false;
	if (!wait) {
		pb_state_pump(pl->state);
		if (!stage_ready(pl))
			return false;
	}
	stage_t st = pl->stages.flights[0];
	pl->stages.nflights--;
	memmove(pl->stages.flights, pl->stages.flights + 1,
		pl->stages.nflights * sizeof(st));
	char err[512];
	int64_t started = pb_mono_ms();
	const char *what = "record";
	pb_err_t e = pb_state_write_recv(pl->state, &st.crec, err, sizeof(err));
	if (!e) {
		for (size_t i = 0; i < st.nrec; i++) {
			task_t *t = pl_list_pop(&pl->to_record);
			t->needs_publish_mark = true;
			pl_key_release(pl, t);
			pl_publish_task(pl, t);
		}
		what = "mark published";
		e = pb_state_write_recv(pl->state, &st.cmark, err, sizeof(err));
	}
	if (!e) {
		pl_pubmarks_drop(pl, st.nmark);
		what = "fetch";
		e = pb_state_fetch_recv(pl->state, &st.cfetch, st.views,
					st.nfetch, err, sizeof(err));
	}
	int64_t spent = st.spent_ms + pb_mono_ms() - started;
	if (e) {
		pb_state_disconnect(pl->state);
		pl_redis_failed(pl, what, err);
		stage_discard(pl, &st);
		pl_stages_discard(pl);
		return false;
	}
	for (size_t i = 0; i < st.nfetch; i++) {
		task_t *t = pl_list_pop(&pl->ready);
		t->view = st.views[i];
		t->view_set = true;
		pl_fetched(pl, t);
	}
	free(st.views);
	free_lingering(pl, st.seq);
	pl_redis_ok(pl, pb_mono_ms() - spent);
	return true;
}

/*
 * Everything that waits on Redis, in stages kept in flight (up to
 * MAX_FLIGHTS): a stage is written as soon as there is work for it, and
 * its replies are applied when they are in, in the order written; the
 * loop meanwhile takes in consumed records, produces outcomes, serves
 * Pruvan's answers and decides the events of earlier stages, and its poll
 * waits on the Redis socket too. Holding still for every round trip was a
 * third of the loop's time (docs/benchmarks.md). A stage never carries a
 * task of one in flight, and an order's next event is ready only once its
 * previous one is recorded (pl_key_release, on applying), so stages never
 * race over an order. A whole call (Auto-Admin, ping, marks at shutdown)
 * first settles every stage in flight (pl_stage_settle).
 */
void pl_redis_stage(pb_pipeline_t *pl, overlap_t *ov)
{
	while (stage_apply(pl, false))
		;
	if (auto_admin_due(pl) && pl_stage_wanted(pl)) {
		pl_stage_settle(pl); /* the refresh is a whole call */
		pl_refresh_auto_admin(pl);
	}
	stage_send(pl);
	overlap_work(pl, ov);
	while (stage_apply(pl, false))
		;
	stage_send(pl);
}

/* Apply every stage in flight, waiting for their replies: before a whole
 * call, or when the loop has nothing else to do. */
void pl_stage_settle(pb_pipeline_t *pl)
{
	while (stage_apply(pl, true))
		;
}

void pl_pubmark_stage(pb_pipeline_t *pl)
{
	pl_stage_settle(pl);
	if (!pl->stages.pubmarks_len || !pl_redis_may_try(pl))
		return;
	pb_state_ref_t *refs = calloc(pl->stages.pubmarks_len, sizeof(*refs));
	if (!refs)
		return;
	for (size_t i = 0; i < pl->stages.pubmarks_len; i++)
		refs[i] = pl->stages.pubmarks[i].ref;
	char err[512];
	int64_t started = pb_mono_ms();
	pb_err_t e = pb_state_mark_published(
	    pl->state, refs, pl->stages.pubmarks_len, err, sizeof(err));
	free(refs);
	if (e) {
		pl_redis_failed(pl, "mark published", err);
		return;
	}
	pl_redis_ok(pl, started);
	pl_pubmarks_drop(pl, pl->stages.pubmarks_len);
}
