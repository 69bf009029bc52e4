/*
 * ops.h: the operations HTTP server (libmicrohttpd, its own thread):
 * /metrics, /healthz, /readyz.
 *
 * @locality: the probe callbacks run on the HTTP server's thread and must
 * only read thread-safe state (atomics) of the pipeline.
 */
#ifndef PB_OPS_H
#define PB_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <microhttpd.h>
#include <sys/socket.h>

#include "err.h"
#include "metrics.h"

/*
 * A probe: true when healthy; otherwise writes a short reason
 * ("redis unreachable", "circuit open for 2 accounts") into reason.
 */
typedef bool (*pb_ops_probe_cb)(void *opaque, char *reason, size_t reason_size);

typedef struct pb_ops pb_ops_t;

/*
 * Listen on "host:port" (port 0 picks a free one; see pb_ops_port). The
 * metrics registry and opaque are borrowed and must outlive the server.
 * /healthz answers 200 {"status":"ok"} or 503 {"status":"fail","reason":...}
 * from alive(); /readyz likewise from ready(); /metrics renders metrics.
 */
pb_err_t pb_ops_start(const char *listen, pb_metrics_t *metrics,
		      pb_ops_probe_cb alive, pb_ops_probe_cb ready,
		      void *opaque, pb_ops_t **ops_out, char *errstr,
		      size_t errstr_size);
int pb_ops_port(const pb_ops_t *ops);
void pb_ops_stop(pb_ops_t *ops); /* accepts NULL */

/* ---- additions ----
 *
 * Routes, exactly: GET or HEAD on /metrics (200, Content-Type
 * "text/plain; version=0.0.4; charset=utf-8"), /healthz and /readyz (200
 * {"status":"ok"} or 503 {"status":"fail","reason":"..."}; a NULL probe
 * counts as healthy). Any other path: 404 {"status":"fail","reason":
 * "not found"}. Any other method: 405 with "Allow: GET, HEAD". The
 * listening port answers nothing else and reads no request body.
 * pb_ops_port returns the bound port (the real one when 0 was asked),
 * or -1 for NULL.
 */

/*
 * Parse a listen address: "host:port", "[ipv6]:port", ":port" or "*:port"
 * (every IPv4 address). port 0..65535. Host names are resolved. For
 * config validation; PB_ERR_CONFIG with the reason in errstr.
 */
pb_err_t pb_ops_parse_listen(const char *listen,
			     struct sockaddr_storage *addr_out,
			     socklen_t *len_out, char *errstr,
			     size_t errstr_size);

/* An HTTP server of this worker (libmicrohttpd) to start on an address. */
typedef struct pb_http_listen {
	const char *listen; /* pb_ops_parse_listen syntax */
	const char *what;   /* names it in errors: "ops server", "relay" */
	unsigned int flags; /* MHD threading flags; IPv6 is added as needed */
	MHD_AccessHandlerCallback handler;
	void *cls;
	unsigned int max_connections;
	unsigned int timeout_s;			/* idle connection timeout */
	MHD_RequestCompletedCallback completed; /* may be NULL */
} pb_http_listen_t;

/* Start it: *daemon_out and the bound port (the real one when 0 was
 * asked) on success; on failure nothing is left running and errstr says
 * which address and why. */
pb_err_t pb_ops_listen(const pb_http_listen_t *l,
		       struct MHD_Daemon **daemon_out, int *port_out,
		       char *errstr, size_t errstr_size);

#endif
