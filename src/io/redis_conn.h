/*
 * redis_conn.h: connections to Redis as production runs it.
 *
 * A pb_redis_t knows where Redis is and how to talk to it: the URL
 * (redis://, rediss:// or unix://, parsed once by pb_redis_url_parse, also
 * for check-config), the credentials (an ACL user and password, sent as
 * AUTH USER PASSWORD), TLS (OpenSSL: CA, client certificate, SNI, the
 * certificate and host name verified unless told otherwise) and Sentinel
 * (the master is asked of the Sentinels on every connect, then confirmed
 * with ROLE, so a failover is followed by reconnecting) or Cluster (one
 * handle over every master, routing by slot: redis_cluster.h).
 *
 * A pb_rconn_t is one open connection: a non-blocking socket (TLS or not)
 * whose bytes are fed to hiredis' reply reader. Commands are appended as
 * RESP, written by pb_rconn_flush, and replies read either without waiting
 * (what has arrived; the caller polls pb_rconn_fd) or waiting up to the
 * timeout. Everything read from a TLS connection is taken out of OpenSSL's
 * buffers at once, so the fd being quiet means no reply is waiting.
 *
 * A failed connect says which step failed (DNS, TCP, TLS, AUTH or
 * protocol) and what to check. Messages never contain a password.
 * Nothing here logs.
 */
#ifndef PB_REDIS_CONN_H
#define PB_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "redis_reply.h"

/* Which step of a connect failed. */
typedef enum {
	PB_RC_OK = 0,
	PB_RC_DNS,	  /* the host name did not resolve */
	PB_RC_TCP,	  /* no TCP (or unix socket) connection */
	PB_RC_TLS,	  /* the TLS handshake failed */
	PB_RC_TLS_VERIFY, /* the server's certificate or name was refused */
	PB_RC_AUTH,	  /* AUTH or SELECT refused */
	PB_RC_PROTOCOL,	  /* the server did not answer as Redis (or as the
			     master it should be) */
} pb_rc_fail_t;

/* "DNS", "TCP", "TLS", "AUTH", "protocol" ("" for PB_RC_OK). */
const char *pb_rc_fail_name(pb_rc_fail_t f);

/* A parsed redis.url; every string owned. */
typedef struct pb_redis_url {
	bool tls;	 /* rediss:// */
	char *host;	 /* without brackets; NULL for unix:// */
	int port;	 /* 6379 */
	char *unix_path; /* unix:///path */
	char *user;	 /* percent-decoded; NULL: none */
	char *password;	 /* SECRET, percent-decoded; NULL: none */
	int db;		 /* 0..15 */
} pb_redis_url_t;

/* Parse url into *out (cleared first). On failure errstr says what is
 * expected without quoting the URL (it may hold a password). */
pb_err_t pb_redis_url_parse(const char *url, pb_redis_url_t *out, char *errstr,
			    size_t errstr_size);
void pb_redis_url_clear(pb_redis_url_t *u);

/* "HOST:PORT" or "[IPv6]:PORT" (as Sentinel, CLUSTER SLOTS and MOVED name
 * a node) into host (brackets removed, at most size - 1 bytes) and port
 * (1..65535); false, outputs untouched, when s is not one. */
bool pb_redis_split_hostport(const char *s, char *host, size_t size, int *port);

/* Everything a pb_redis_t is made from (borrowed; copied by new). */
typedef struct pb_redis_opts {
	const char *url;      /* NULL: redis://127.0.0.1:6379/0 */
	const char *password; /* redis.password (SECRET); NULL: the URL's */
	bool tls;	      /* redis.tls given (rediss:// turns it on too) */
	const char *ca_file, *cert_file, *key_file, *server_name;
	bool tls_verify;	     /* certificate and host name */
	const char *sentinel_master; /* NULL: no Sentinel */
	const char *const *sentinel_nodes;
	size_t sentinel_nodes_len;
	const char *sentinel_password;	  /* SECRET, may be NULL */
	const char *const *cluster_nodes; /* Cluster seeds; 0: no Cluster */
	size_t cluster_nodes_len;
	int timeout_ms; /* connect and each reply */
} pb_redis_opts_t;

typedef struct pb_redis pb_redis_t;
typedef struct pb_rconn pb_rconn_t;

/* Check the options (URL, certificate files) and build the handle; nothing
 * is connected yet. A TLS file that cannot be loaded is PB_ERR_CONFIG. */
pb_err_t pb_redis_new(const pb_redis_opts_t *o, pb_redis_t **out, char *errstr,
		      size_t errstr_size);
void pb_redis_destroy(pb_redis_t *r);
bool pb_redis_tls(const pb_redis_t *r);
/* Whether r routes over a Redis Cluster (redis.cluster set). */
bool pb_redis_is_cluster(const pb_redis_t *r);
/* Database from the URL (0 with Cluster). */
int pb_redis_db(const pb_redis_t *r);

/* Open a connection to the Redis master (through Sentinel when
 * configured), authenticated and on the configured database. On failure
 * *fail (may be NULL) says which step failed and errstr says what to
 * check; the error is PB_ERR_REDIS. */
pb_err_t pb_redis_dial(pb_redis_t *r, pb_rconn_t **out, pb_rc_fail_t *fail,
		       char *errstr, size_t errstr_size);
/* The same to host:port (Cluster nodes): no Sentinel, no SELECT. */
pb_err_t pb_redis_dial_node(pb_redis_t *r, const char *host, int port,
			    pb_rconn_t **out, pb_rc_fail_t *fail, char *errstr,
			    size_t errstr_size);
/* One connection to every master, for work each master does on its own
 * keys (SCAN): with Cluster each master of the slot map (read from one
 * seed), else the one pb_redis_dial opens. *out (*n of them) is owned:
 * pb_redis_masters_close. On failure nothing is left open. */
pb_err_t pb_redis_dial_masters(pb_redis_t *r, pb_rconn_t ***out, size_t *n,
			       pb_rc_fail_t *fail, char *errstr,
			       size_t errstr_size);
void pb_redis_masters_close(pb_rconn_t **c, size_t n);

/* Whether no database of c[0..n) holds a key (DBSIZE 0 on each): PB_OK
 * and *empty. A refusal (an ACL user without DBSIZE) is PB_ERR_REDIS with
 * *refused set and errstr quoting Redis; a lost connection PB_ERR_REDIS
 * with *refused false. *empty is true only when every master answered 0:
 * a caller that goes on after a refusal takes Redis for one holding
 * data. */
pb_err_t pb_rconn_all_empty(pb_rconn_t **c, size_t n, bool *empty,
			    bool *refused, char *errstr, size_t errstr_size);
/* The same over every master (pb_redis_dial_masters, each dialled and
 * closed here) when r is a Cluster; else over c, the handle to the one
 * master. A Cluster handle's keyless command reaches one node only. */
pb_err_t pb_redis_empty(pb_redis_t *r, pb_rconn_t *c, bool *empty,
			bool *refused, char *errstr, size_t errstr_size);

void pb_rconn_close(pb_rconn_t *c);
int pb_rconn_fd(const pb_rconn_t *c);
/* "host:port" of the connection (for messages). */
const char *pb_rconn_peer(const pb_rconn_t *c);
/* Queue RESP bytes; false when out of memory. */
bool pb_rconn_append(pb_rconn_t *c, const char *buf, size_t len);
/* Write everything queued (waiting up to the timeout). */
pb_err_t pb_rconn_flush(pb_rconn_t *c, char *errstr, size_t errstr_size);
/* The next reply into *out (caller frees it with pb_reply_free). wait
 * false: only from what has arrived, *out NULL when none is complete;
 * wait true: up to the timeout. An error means the connection is unusable
 * and must be closed. */
pb_err_t pb_rconn_reply(pb_rconn_t *c, bool wait, redisReply **out,
			char *errstr, size_t errstr_size);
/* One synchronous command (nothing else may be outstanding): its reply, or
 * NULL with errstr set when the connection failed. */
redisReply *pb_rconn_command(pb_rconn_t *c, char *errstr, size_t errstr_size,
			     int argc, const char **argv);

#endif
