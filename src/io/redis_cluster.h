/*
 * redis_cluster.h: Redis Cluster behind one pb_rconn_t (internal to the
 * connection layer; callers see redis_conn.h only).
 *
 * The caller's pipeline is RESP it wrote itself; the cluster reads it back
 * command by command, groups MULTI..EXEC blocks (one order's keys share a
 * hash tag, so a block is one slot and stays one transaction on one node),
 * routes each group by the CRC16 slot of its first key, and hands the
 * replies back in the order the commands were appended. Each node gets its
 * groups pipelined in one write per flush. MOVED is followed (the slot map
 * updated, a full CLUSTER SLOTS refresh done once the pipeline is idle),
 * ASK is followed once with ASKING. WAIT goes to every node written since
 * the last WAIT and answers the least count. Any node's connection failure
 * fails the whole handle: the caller reconnects, which reads the slot map
 * again (so a failover is followed).
 */
#ifndef PB_REDIS_CLUSTER_H
#define PB_REDIS_CLUSTER_H

#include "redis_conn.h"

typedef struct pb_cluster pb_cluster_t;

/* CRC16 slot of a key (its {hash tag} when it has one). */
unsigned pb_cluster_slot(const char *key, size_t len);

/* The slot map is read from the first seed that answers, starting at
 * seeds[start % nseeds] (callers rotate it, so a seed with a stale view
 * is not asked every time). */
pb_err_t pb_cluster_open(pb_redis_t *r, char *const *seeds, size_t nseeds,
			 size_t start, pb_cluster_t **out, pb_rc_fail_t *fail,
			 char *errstr, size_t errstr_size);
void pb_cluster_close(pb_cluster_t *cl);
bool pb_cluster_append(pb_cluster_t *cl, const char *buf, size_t len);
pb_err_t pb_cluster_flush(pb_cluster_t *cl, char *errstr, size_t errstr_size);
pb_err_t pb_cluster_reply(pb_cluster_t *cl, bool wait, redisReply **out,
			  char *errstr, size_t errstr_size);
int pb_cluster_fd(const pb_cluster_t *cl);
/* Node i (0 ..) the handle knows: its host and port, and whether the slot
 * map gives it a slot (a master); false past the last node. */
bool pb_cluster_node_at(const pb_cluster_t *cl, size_t i, const char **host,
			int *port, bool *serves);

#endif
