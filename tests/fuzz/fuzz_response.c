/*
 * fuzz_response.c: libFuzzer target for Pruvan's response bodies and the
 * relayed-item parser (both read bytes from outside).
 *
 * Checks that a parsed response is self-consistent (counts non-negative,
 * error text terminated), that outcome_for never returns anything but
 * the four names or NULL, and that a relayed item read has a uuId and a
 * non-empty key1 or key2. Also linked into fuzz_replay_response.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_pruvan_result_t r;
	char errstr[256];
	if (pb_pruvan_response_parse((const char *)data, size, &r, errstr,
				     sizeof(errstr)) == PB_OK) {
		if (r.created < 0 || r.updated < 0 || r.deleted < 0 ||
		    strlen(r.error) >= sizeof(r.error))
			abort();
		for (int a = 0; a < 3; a++) {
			pb_decision_t d = {.push_action = (pb_action_t)a};
			const char *o = pb_rules_outcome_for(&d, &r);
			if (o && strcmp(o, "created") && strcmp(o, "updated") &&
			    strcmp(o, "deleted"))
				abort();
			if (o && r.has_error)
				abort();
		}
	}
	pb_inbound_t *in = NULL;
	pb_rejection_t rej;
	if (pb_inbound_parse((const char *)data, size, &in, &rej) == PB_OK) {
		/* contract 5: a uuId and at least one of key1 and key2 */
		if (!in->uuid || (!in->key1 && !in->key2) ||
		    (in->key1 && !in->key1[0]) || (in->key2 && !in->key2[0]) ||
		    !json_is_object(in->item))
			abort();
		pb_inbound_destroy(in);
	} else {
		if (!rej.reason)
			abort();
		pb_rejection_clear(&rej);
	}
	return 0;
}
