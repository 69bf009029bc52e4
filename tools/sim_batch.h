/*
 * sim_batch.h: a push's workOrders, read once into what the simulator's
 * model needs (sim_state.c), without a JSON tree for the common body.
 *
 * The simulator shares the benchmark's machine with the worker; a jansson
 * tree of 50 orders, and merging it field by field into a jansson store,
 * cost ~300 us per request. pb_sim_batch_read scans plain JSON (ASCII, no
 * \u escape, short numbers without exponent, shallow nesting, the body
 * {"workOrders":[{...},...]} exactly) itself and keeps each order as its
 * text and a few facts. Anything else is read by jansson as before, so
 * that both paths accept exactly what json_loadb accepts, answer the same
 * errors and yield the same facts (tests/unit/test_sim.c drives both).
 *
 * Invariants: a batch's texts are JSON that json_loadb reads back to the
 * values pushed; won, when set, is the decoded workOrderNumber; texts and
 * names may point into the text given to pb_sim_batch_read, which must
 * outlive the batch.
 */
#ifndef PB_SIM_BATCH_H
#define PB_SIM_BATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* What a create lacks, in the order the error names them. */
enum {
	PB_SIM_P_ADDRESS1 = 1u << 0, /* missing address1 */
	PB_SIM_P_CITY = 1u << 1,
	PB_SIM_P_STATE = 1u << 2,
	PB_SIM_P_ZIP = 1u << 3,
	PB_SIM_P_BAD_STATE = 1u << 4, /* invalid state */
	PB_SIM_P_BAD_ZIP = 1u << 5,
	PB_SIM_P_SERVICES = 1u << 6, /* missing services */
	PB_SIM_P_UNNAMED = 1u << 7,  /* no service with a serviceName */
};

/* One element of workOrders. */
typedef struct pb_sim_order {
	bool is_object;	 /* not an object: the batch is refused */
	const char *won; /* non-empty workOrderNumber (not NUL-terminated),
			    or NULL */
	size_t won_len;
	bool is_delete;	   /* status is the string "deleted", any case */
	unsigned problems; /* PB_SIM_P_* for a create; 0 if none */
	const char *text;  /* the object's JSON text */
	size_t len;
	const char *names; /* member names not starting with '_', each
			      NUL-terminated, in the text's order */
	size_t names_len;
} pb_sim_order_t;

typedef struct pb_sim_batch {
	bool present;	 /* the body held {"workOrders": ...} */
	bool is_array;	 /* ... and it is an array */
	const char *wos; /* the workOrders value's JSON text */
	size_t wos_len;
	pb_sim_order_t *orders; /* is_array: n of them */
	size_t n;
	/* owned */
	char *names_buf;
	char **owned; /* jansson's path: the texts it wrote */
	size_t nowned;
	json_t *doc; /* jansson's path: won points into it */
} pb_sim_batch_t;

/*
 * Read the JSON text[0..len) of a push into *b (emptied first). Returns 0
 * when it is JSON: then b->present tells whether it is the object
 * {"workOrders": ...}. -1 when it is not JSON (err says why, as jansson
 * words it) or on out of memory (err says so).
 */
int pb_sim_batch_read(const char *text, size_t len, pb_sim_batch_t *b,
		      char *err, size_t err_size);
void pb_sim_batch_free(pb_sim_batch_t *b);

/* jansson's reading alone, which pb_sim_batch_read falls back to (the
 * tests compare the two). A batch the scan read has b->doc NULL. */
int pb_sim_batch_read_json(const char *text, size_t len, pb_sim_batch_t *b,
			   char *err, size_t err_size);

/* The problems of a create as the error lists them ("" if none). */
void pb_sim_problems_text(unsigned problems, char *buf, size_t size);

#endif
