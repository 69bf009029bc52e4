/*
 * rules.h: Pruvan's integration rules as a pure module.
 *
 * Everything here is a function of its arguments: no Kafka, Redis, HTTP,
 * clock or logging. The pipeline parses an event, loads the order's state,
 * asks pb_rules_decide() what to push, pushes it, and classifies Pruvan's
 * answer with pb_pruvan_response_parse(). Every rule of
 * spec/pruvan-remote-fields.txt and contract sections 3-5 lives here, so
 * every rule is unit-testable in isolation.
 *
 * The status table (spec/status-matrix.csv) is compiled into the module at
 * build time, so the table and the code cannot drift.
 *
 * Ownership: *_new / *_parse outputs are owned by the caller; everything
 * passed in is borrowed. json_t fields marked "owned" hold one reference.
 */
#ifndef PB_RULES_H
#define PB_RULES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

typedef enum {
	PB_ACTION_CREATE = 0,
	PB_ACTION_UPDATE,
	PB_ACTION_DELETE,
} pb_action_t;

const char *pb_action_name(pb_action_t a); /* "create", "update", "delete" */

/* A parsed, structurally valid order event (contract section 3). */
typedef struct pb_event {
	char *event_id;
	char *account;
	pb_action_t action;
	int64_t occurred_ms; /* occurredAt as epoch milliseconds (UTC) */
	bool has_version;
	int64_t version;
	char *work_order_number;
	json_t *order; /* owned: the "order" object as received */
} pb_event_t;

/*
 * Why an input was refused. reason is a static snake_case code from the
 * contract (invalid_json, missing_field, invalid_field, invalid_action,
 * invalid_date, invalid_address, no_services, unknown_account,
 * status_not_allowed, assigned_to_not_allowed, delete_not_allowed,
 * order_deleted, ...); message says, for people, what is wrong and what to
 * do. The identity fields hold whatever could be read (owned, may be NULL)
 * so the outcome record can still name the event.
 */
typedef struct pb_rejection {
	const char *reason;
	char message[512];
	char *event_id;
	char *account;
	char *work_order_number;
} pb_rejection_t;

void pb_rejection_clear(pb_rejection_t *rej); /* frees the identity fields */

/* The largest record value read as an event or a relayed item (1 MiB). */
#define PB_RULES_RECORD_MAX (1024 * 1024)

/* Whether a record value of len bytes is larger than any may be (contract
 * 6: rejected too_large, before parsing); if so rej says so and what to
 * do (reason and message only). */
bool pb_rejection_too_large(size_t len, pb_rejection_t *rej);

/*
 * Parse and validate one order event from raw bytes (need not be
 * NUL-terminated). PB_OK: *ev_out is owned by the caller. PB_ERR_INVALID:
 * *rej is filled in (reason, message, identity as far as readable).
 * Validates: JSON object, eventId/account (non-empty strings), action,
 * occurredAt (RFC 3339), version (integer >= 0 if present), order object,
 * order.workOrderNumber (non-empty string). Field-level checks that depend
 * on the account (status, assignedTo, address, dates...) are in
 * pb_rules_decide.
 */
pb_err_t pb_event_parse(const char *buf, size_t len, pb_event_t **ev_out,
			pb_rejection_t *rej);
void pb_event_destroy(pb_event_t *ev);

/* What the worker knows of an order (from Redis), all borrowed. */
typedef struct pb_order_state {
	bool created; /* the bridge pushed a successful create for it */
	bool deleted; /* tombstoned: the bridge pushed a successful delete */
	bool has_version; /* last applied event had a version */
	int64_t version;
	int64_t occurred_ms; /* last applied event's occurredAt; 0 = none */
	/* the last pushed value of each field: a JSON object's text as the
	 * worker stored it (keys sorted, compact), or NULL */
	const char *pushed;
	size_t pushed_len;
} pb_order_state_t;

typedef enum {
	PB_VERDICT_PUSH = 0,  /* push work_order */
	PB_VERDICT_UNCHANGED, /* update that changes nothing: push nothing */
	PB_VERDICT_STALE,     /* older than the last applied event */
	PB_VERDICT_REJECTED,  /* refused: reason + message */
} pb_verdict_t;

typedef struct pb_decision {
	pb_verdict_t verdict;
	/* What is being pushed: CREATE (new order), UPDATE (incl. a create
	 * applied as update, warning already_created), DELETE. */
	pb_action_t push_action;
	bool unknown_order; /* update of an order without record: its outcome
			       follows Pruvan's counts; push it alone */
	const char *reason; /* for REJECTED/STALE, static */
	char message[512];
	json_t *work_order; /* owned: the Pruvan work order object to push */
	/* owned: work_order's text as pb_jt_dumps(work_order, false) writes
	 * it, when the rules wrote it already; NULL: dump it */
	char *work_order_text;
	char *pushed_after; /* owned: st->pushed merged with what is pushed
			       (the same form); store it as the order's
			       state once Pruvan accepted the push */
	/* owned arrays, NULL while empty (most decisions have neither: two
	 * arrays made and freed per event were ~1% of the worker's CPU) */
	json_t *warnings; /* of {"code": "...", "message": "..."} */
	json_t *withheld; /* of field names (strings) */
} pb_decision_t;

/*
 * Apply every rule to an event. acct NULL means the account is not
 * configured (rejected: unknown_account). auto_admin is the account's
 * current switch. st may be NULL for "no record of this order". Always
 * fills *out (call pb_decision_clear after use); never fails otherwise.
 */
void pb_rules_decide(const pb_event_t *ev, const pb_account_t *acct,
		     bool auto_admin, const pb_order_state_t *st,
		     pb_decision_t *out);
void pb_decision_clear(pb_decision_t *d);

/*
 * Whether deciding ev for acct may push a delete, known before the order's
 * state is read: a delete event, or an update with a status (it may be
 * "deleted"), on an account that allows deletes. False: no decision on ev
 * pushes a delete, whatever the state. A delete is the one decision on an
 * order event that uses the order's learned Key1 (the deleted order's
 * Key1 is remembered), so its fetch may leave it unread.
 */
bool pb_rules_may_push_delete(const pb_event_t *ev, const pb_account_t *acct);

/* Add a warning {"code": code, "message": message} to d's outcome. */
void pb_decision_warn(pb_decision_t *d, const char *code, const char *message);

/* Pruvan's answer:
 * {"response":{"created":N,"updated":N,"deleted":N},"error":null} */
typedef struct pb_pruvan_result {
	int created, updated, deleted;
	bool has_error;	 /* "error" non-null and not empty */
	char error[256]; /* Pruvan's error text, truncated */
} pb_pruvan_result_t;

/*
 * Parse a Pruvan response body. PB_ERR_INVALID (errstr says why) when the
 * body is not that shape at all.
 */
pb_err_t pb_pruvan_response_parse(const char *body, size_t len,
				  pb_pruvan_result_t *out, char *errstr,
				  size_t errstr_size);

/*
 * The outcome of a single-order push that Pruvan accepted: "created",
 * "updated" or "deleted" by the action, except that an unknown_order update
 * follows Pruvan's counts. NULL when the counts say nothing happened.
 */
const char *pb_rules_outcome_for(const pb_decision_t *d,
				 const pb_pruvan_result_t *r);

/* A relayed item (contract section 5). */
typedef struct pb_inbound {
	char *account;
	char *kind;   /* photo | survey | status | order */
	char *uuid;   /* item.uuId: dedupe key */
	char *key1;   /* Pruvan's key of the order, may be NULL */
	char *key2;   /* work order number; NULL when only key1 was given */
	json_t *item; /* owned */
	/* the item's source_wo_id and source_wo_number as text
	 * (pb_rules_source_id_text), NULL when absent: they identify the
	 * order too (contract section 5) */
	char *source_wo_id;
	char *source_wo_number;
} pb_inbound_t;

pb_err_t pb_inbound_parse(const char *buf, size_t len, pb_inbound_t **in_out,
			  pb_rejection_t *rej);
void pb_inbound_destroy(pb_inbound_t *in);

/*
 * Relay rule (contract section 5). Returns the discard reason, or NULL to
 * relay:
 *  - key1_of_deleted_order (the item's key1 belonged to an order the
 *    remote system deleted): "order_deleted";
 *  - order_deleted (the item's work order number is tombstoned) and the
 *    item's key1 is the order's learned key1, or either is unknown:
 *    "order_deleted";
 *  - order_deleted and the item's key1 differs from the learned one (Pruvan
 *    recreated the order under a new Key1): "recreated_after_delete".
 */
const char *pb_rules_inbound_discard_reason(bool order_deleted,
					    const char *learned_key1,
					    const char *item_key1,
					    bool key1_of_deleted_order);

/*
 * The remote system's correlation fields that identify an order in relayed
 * data (contract section 5): source_wo_id and source_wo_number.
 * pb_rules_source_id_text: a value's text (a non-empty string as it is, an
 * integer in decimal), or NULL for anything else; malloc'd.
 * pb_rules_pushed_source_id: the same for field name in an order's last
 * pushed fields (pushed[0..len), a JSON object's text), NULL when absent.
 */
char *pb_rules_source_id_text(const json_t *v);
char *pb_rules_pushed_source_id(const char *pushed, size_t len,
				const char *name);

#endif
