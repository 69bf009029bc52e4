/*
 * fetchwake.c: wakes librdkafka's fetcher (see fetchwake.h).
 */
#include "fetchwake.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

/* how long one wake waits for the leaders' answers, which nobody reads:
 * bounds how long destroy can wait */
#define WAKE_TIMEOUT_MS 1000

struct pb_fetchwake {
	rd_kafka_t *rk;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	rd_kafka_topic_partition_list_t *pending; /* guarded by mu */
	bool busy;				  /* a wake under way */
	bool stop;
	uint64_t count;
};

static void *run(void *arg)
{
	pb_fetchwake_t *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stop && !w->pending)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		rd_kafka_topic_partition_list_t *l = w->pending;
		w->pending = NULL;
		w->busy = true;
		w->count++;
		pthread_mutex_unlock(&w->mu);
		/* the latest offset of each: the answer is not needed, the
		 * request is what wakes the leader's broker thread */
		for (int i = 0; i < l->cnt; i++)
			l->elems[i].offset = RD_KAFKA_OFFSET_END;
		rd_kafka_offsets_for_times(w->rk, l, WAKE_TIMEOUT_MS);
		rd_kafka_topic_partition_list_destroy(l);
		pthread_mutex_lock(&w->mu);
		w->busy = false;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

pb_err_t pb_fetchwake_new(rd_kafka_t *consumer, pb_fetchwake_t **out,
			  char *errstr, size_t errstr_size)
{
	*out = NULL;
	pb_fetchwake_t *w = calloc(1, sizeof(*w));
	if (!w)
		return PB_ERR_NOMEM;
	w->rk = consumer;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->thread, NULL, run, w) != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "cannot start the fetch waker thread: out of "
			       "threads or memory");
	}
	*out = w;
	return PB_OK;
}

void pb_fetchwake_request(pb_fetchwake_t *w,
			  const rd_kafka_topic_partition_list_t *parts)
{
	if (!w || !parts || !parts->cnt)
		return;
	pthread_mutex_lock(&w->mu);
	if (!w->busy && !w->pending && !w->stop) {
		w->pending = rd_kafka_topic_partition_list_copy(parts);
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
}

uint64_t pb_fetchwake_count(pb_fetchwake_t *w)
{
	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	uint64_t n = w->count;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void pb_fetchwake_destroy(pb_fetchwake_t *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	if (w->pending)
		rd_kafka_topic_partition_list_destroy(w->pending);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
