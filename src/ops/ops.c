/*
 * ops.c: see ops.h. The operations HTTP server.
 *
 * libmicrohttpd runs its own polling thread, so a slow scrape never holds
 * up the consumer loop; the only shared state is the metrics registry (its
 * own mutex) and whatever the probe callbacks read (atomics, by contract).
 *
 * Routes: GET|HEAD /metrics, /healthz, /readyz. Anything else is 404 (JSON);
 * another method on any path is 405 with Allow: GET, HEAD. MHD answers HEAD
 * with the GET headers and no body by itself.
 *
 * Bounds: a handful of concurrent connections and a short idle timeout:
 * this port serves kubelet probes and a Prometheus scrape, nothing else.
 * Request bodies are never read. MHD's error log is off: library code does
 * not print (a bind failure comes back through errstr instead).
 */
#include "ops.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "util.h"

#define OPS_MAX_CONNECTIONS	 32
#define OPS_CONNECTION_TIMEOUT_S 10
#define OPS_REASON_MAX		 256

#define CT_JSON	   "application/json"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct pb_ops {
	struct MHD_Daemon *daemon;
	pb_metrics_t *metrics;
	pb_ops_probe_cb alive;
	pb_ops_probe_cb ready;
	void *opaque;
	int port;
};

/*
 * Split "host:port" / "[v6]:port" into a socket address. An empty host
 * ("":9464) or "*" means every IPv4 address. Hostnames are resolved once.
 */
pb_err_t pb_ops_parse_listen(const char *listen,
			     struct sockaddr_storage *addr_out,
			     socklen_t *len_out, char *errstr,
			     size_t errstr_size)
{
	char host[256];
	const char *port_str;
	if (!listen || !*listen)
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "listen address is empty");
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':')
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "listen \"%s\": expected [ipv6]:port",
				       listen);
		size_t n = (size_t)(close - listen - 1);
		if (n == 0 || n >= sizeof(host))
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "listen \"%s\": bad IPv6 address",
				       listen);
		memcpy(host, listen + 1, n);
		host[n] = '\0';
		port_str = close + 2;
	} else {
		const char *colon = strrchr(listen, ':');
		if (!colon || strchr(listen, ':') != colon)
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "listen \"%s\": expected host:port "
				       "(IPv6 as [addr]:port)",
				       listen);
		size_t n = (size_t)(colon - listen);
		if (n >= sizeof(host))
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "listen \"%s\": host too long", listen);
		memcpy(host, listen, n);
		host[n] = '\0';
		port_str = colon + 1;
	}
	int64_t port;
	if (!pb_parse_i64(port_str, &port) || port < 0 || port > 65535)
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "listen \"%s\": port must be 0..65535", listen);

	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t len;
	if (host[0] == '\0' || strcmp(host, "*") == 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons((uint16_t)port);
		len = sizeof(*sin);
	} else {
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = listen[0] == '[' ? AF_INET6 : AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		int rc = getaddrinfo(host, port_str, &hints, &res);
		if (rc != 0 || !res)
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "listen \"%s\": cannot resolve \"%s\": "
				       "%s",
				       listen, host, gai_strerror(rc));
		if (res->ai_addrlen > sizeof(ss)) {
			freeaddrinfo(res);
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "listen \"%s\": address too long",
				       listen);
		}
		memcpy(&ss, res->ai_addr, res->ai_addrlen);
		len = (socklen_t)res->ai_addrlen;
		freeaddrinfo(res);
	}
	*addr_out = ss;
	*len_out = len;
	return PB_OK;
}

/* Queue a response and drop our reference to it. */
static enum MHD_Result send_response(struct MHD_Connection *conn,
				     unsigned int status,
				     const char *content_type, char *body,
				     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), body, mode);
	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	/* Probe and scrape results are point-in-time. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_static(struct MHD_Connection *conn,
				   unsigned int status, const char *body)
{
	/* PERSISTENT: MHD neither copies nor frees string literals. */
	return send_response(conn, status, CT_JSON, (char *)body,
			     MHD_RESPMEM_PERSISTENT);
}

/* /healthz and /readyz: 200 ok, or 503 with the probe's reason. */
static enum MHD_Result answer_probe(struct MHD_Connection *conn,
				    pb_ops_probe_cb probe, void *opaque)
{
	char reason[OPS_REASON_MAX] = "";
	if (!probe || probe(opaque, reason, sizeof(reason)))
		return send_static(conn, MHD_HTTP_OK, "{\"status\":\"ok\"}");
	reason[sizeof(reason) - 1] = '\0';
	if (!reason[0])
		pb_strlcpy(reason, "unspecified", sizeof(reason));
	/* jansson escapes the reason; it may hold quotes or control bytes. */
	json_t *obj =
	    json_pack("{s:s, s:s}", "status", "fail", "reason", reason);
	char *body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	if (!body)
		return send_static(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "{\"status\":\"fail\"}");
	return send_response(conn, MHD_HTTP_SERVICE_UNAVAILABLE, CT_JSON, body,
			     MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result answer_metrics(struct MHD_Connection *conn,
				      pb_ops_t *ops)
{
	char *body = pb_metrics_render(ops->metrics);
	if (!body)
		return send_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				   "{\"status\":\"fail\",\"reason\":"
				   "\"cannot render metrics\"}");
	return send_response(conn, MHD_HTTP_OK, CT_METRICS, body,
			     MHD_RESPMEM_MUST_FREE);
}

/*
 * @locality: MHD's internal thread. Answers on the first call for every
 * request: none of our routes reads a body, and answering a POST at once
 * makes MHD discard (not buffer) whatever the client uploads.
 */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	pb_ops_t *ops = cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return send_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				   "{\"status\":\"fail\",\"reason\":"
				   "\"method not allowed\"}");
	if (strcmp(url, "/metrics") == 0)
		return answer_metrics(conn, ops);
	if (strcmp(url, "/healthz") == 0)
		return answer_probe(conn, ops->alive, ops->opaque);
	if (strcmp(url, "/readyz") == 0)
		return answer_probe(conn, ops->ready, ops->opaque);
	return send_static(conn, MHD_HTTP_NOT_FOUND,
			   "{\"status\":\"fail\",\"reason\":\"not found\"}");
}

pb_err_t pb_ops_listen(const pb_http_listen_t *l,
		       struct MHD_Daemon **daemon_out, int *port_out,
		       char *errstr, size_t errstr_size)
{
	*daemon_out = NULL;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	pb_err_t err = pb_ops_parse_listen(l->listen, &addr, &addr_len, errstr,
					   errstr_size);
	if (err != PB_OK)
		return err;
	unsigned int flags = l->flags;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	/* The port argument is ignored when MHD_OPTION_SOCK_ADDR is given. */
	struct MHD_Daemon *d = MHD_start_daemon(
	    flags, 0, NULL, NULL, l->handler, l->cls, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
	    l->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, l->timeout_s,
	    MHD_OPTION_NOTIFY_COMPLETED, l->completed, NULL, MHD_OPTION_END);
	if (!d) {
		/* MHD keeps errno from the failing bind/listen. */
		int e = errno;
		return pb_errf(errstr, errstr_size, PB_ERR_IO,
			       "%s cannot listen on %s: %s", l->what, l->listen,
			       e ? strerror(e) : "libmicrohttpd failed");
	}
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	int port = info ? (int)info->port : -1;
	if (port <= 0) {
		MHD_stop_daemon(d);
		return pb_errf(errstr, errstr_size, PB_ERR_IO,
			       "%s on %s: cannot read the bound port", l->what,
			       l->listen);
	}
	*daemon_out = d;
	*port_out = port;
	return PB_OK;
}

pb_err_t pb_ops_start(const char *listen, pb_metrics_t *metrics,
		      pb_ops_probe_cb alive, pb_ops_probe_cb ready,
		      void *opaque, pb_ops_t **ops_out, char *errstr,
		      size_t errstr_size)
{
	if (!metrics || !ops_out)
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "pb_ops_start: metrics and ops_out required");
	pb_ops_t *ops = calloc(1, sizeof(*ops));
	if (!ops)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory");
	ops->metrics = metrics;
	ops->alive = alive;
	ops->ready = ready;
	ops->opaque = opaque;
	pb_http_listen_t l = {
	    .listen = listen,
	    .what = "ops server",
	    .flags = MHD_USE_AUTO_INTERNAL_THREAD,
	    .handler = handle,
	    .cls = ops,
	    .max_connections = OPS_MAX_CONNECTIONS,
	    .timeout_s = OPS_CONNECTION_TIMEOUT_S,
	};
	pb_err_t err =
	    pb_ops_listen(&l, &ops->daemon, &ops->port, errstr, errstr_size);
	if (err) {
		free(ops);
		return err;
	}
	*ops_out = ops;
	return PB_OK;
}

int pb_ops_port(const pb_ops_t *ops)
{
	return ops ? ops->port : -1;
}

void pb_ops_stop(pb_ops_t *ops)
{
	if (!ops)
		return;
	/* Joins MHD's thread: no callback runs after this returns. */
	if (ops->daemon)
		MHD_stop_daemon(ops->daemon);
	free(ops);
}
