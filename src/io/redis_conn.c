/*
 * redis_conn.c: Redis connections over TCP, unix sockets and TLS, with ACL
 * users and Sentinel (see redis_conn.h).
 *
 * hiredis 0.14 (Debian 12) has no TLS, so the transport is our own: a
 * non-blocking socket, optionally wrapped in an OpenSSL session, and
 * hiredis only for what it is good at, formatting commands and parsing
 * replies (redisReader). Blocking steps (connect, handshake, a write that
 * does not fit the socket buffer, a waited-for reply) poll with a deadline
 * of timeout_ms each, so nothing here waits forever.
 *
 * Invariants: the connection holds every byte read from it, in its input
 * buffer or its reply reader (a TLS read drains OpenSSL until it wants more
 * from the socket, so poll on the fd tells the whole truth); the reader is
 * fed at most PB_RC_FEED bytes beyond a reply it is still missing, because
 * hiredis 0.14 moves the rest of its buffer forward after each reply once
 * 1 KiB is consumed, and a whole pipelined stage there would make that cost
 * grow with the square of the stage's replies; passwords never reach a
 * message.
 */
#include "redis_conn.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "redis_cluster.h"
#include "util.h"

struct pb_redis {
	pb_redis_url_t url;
	char *password; /* the effective one: redis.password or the URL's */
	bool tls;
	bool verify;
	char *server_name;
	SSL_CTX *ctx;
	char *master; /* Sentinel master name; NULL: none */
	char **sentinels;
	size_t sentinels_len;
	char *sentinel_password;
	char **cluster; /* Cluster seed nodes; NULL: no Cluster */
	size_t cluster_len;
	size_t cluster_next; /* the seed asked first next time */
	int timeout_ms;
};

struct pb_rconn {
	int fd;
	SSL *ssl;
	redisReader *reader;
	char *in; /* read, not yet fed to the reader: [in_pos, in_len) */
	size_t in_pos, in_len, in_cap;
	char *out;
	size_t out_len, out_cap;
	int timeout_ms;
	char peer[300];
	pb_cluster_t *cl; /* a Cluster: every call goes there (fd -1) */
};

const char *pb_rc_fail_name(pb_rc_fail_t f)
{
	switch (f) {
	case PB_RC_OK:
		return "";
	case PB_RC_DNS:
		return "DNS";
	case PB_RC_TCP:
		return "TCP";
	case PB_RC_TLS:
	case PB_RC_TLS_VERIFY:
		return "TLS";
	case PB_RC_AUTH:
		return "AUTH";
	case PB_RC_PROTOCOL:
		return "protocol";
	}
	return "protocol";
}

/* ---- the URL ------------------------------------------------------------ */

void pb_redis_url_clear(pb_redis_url_t *u)
{
	if (!u)
		return;
	free(u->host);
	free(u->unix_path);
	free(u->user);
	if (u->password)
		explicit_bzero(u->password, strlen(u->password));
	free(u->password);
	memset(u, 0, sizeof(*u));
}

static const char url_form[] =
    "expected \"redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]\", "
    "\"rediss://...\" (TLS; HOST may be [IPv6], DB 0..15) or "
    "\"unix:///PATH\"";

/* One part of a parsed URL, percent-decoded where asked; *out NULL when
 * the part is absent. False when out of memory or malformed. */
static bool url_part(CURLU *h, CURLUPart what, unsigned flags, char **out)
{
	char *v = NULL;
	*out = NULL;
	CURLUcode rc = curl_url_get(h, what, &v, flags);
	if (rc != CURLUE_OK)
		return rc == CURLUE_NO_USER || rc == CURLUE_NO_PASSWORD ||
		       rc == CURLUE_NO_PORT;
	*out = strdup(v);
	curl_free(v);
	return *out != NULL;
}

static bool url_db(const char *path, int *db)
{
	if (!path || !path[0] || strcmp(path, "/") == 0)
		return true;
	int64_t v;
	if (path[0] != '/' || path[1] == '+' || path[1] == '-' ||
	    !pb_parse_i64(path + 1, &v) || v < 0 || v > 15)
		return false;
	*db = (int)v;
	return true;
}

/* The parts curl leaves to us: [IPv6] brackets, the port's range, the
 * database, an empty user. */
static pb_err_t url_finish(pb_redis_url_t *out, const char *port,
			   const char *path, char *errstr, size_t errstr_size)
{
	size_t hl = strlen(out->host);
	if (out->host[0] == '[' && hl > 2 && out->host[hl - 1] == ']') {
		memmove(out->host, out->host + 1, hl - 2);
		out->host[hl - 2] = '\0';
	}
	int64_t pv;
	if (port && (!pb_parse_i64(port, &pv) || pv < 1 || pv > 65535))
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "not a Redis URL (port 1..65535): %s", url_form);
	if (port)
		out->port = (int)pv;
	if (!url_db(path, &out->db))
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "not a Redis URL (database 0..15): %s",
			       url_form);
	if (out->user && !out->user[0]) {
		free(out->user); /* redis://:PASSWORD@HOST: no user */
		out->user = NULL;
	}
	return PB_OK;
}

pb_err_t pb_redis_url_parse(const char *url, pb_redis_url_t *out, char *errstr,
			    size_t errstr_size)
{
	memset(out, 0, sizeof(*out));
	out->port = 6379;
	for (const unsigned char *p = (const unsigned char *)url; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "not a Redis URL (it contains a space "
				       "or control character): %s",
				       url_form);
	if (strncasecmp(url, "unix://", 7) == 0) {
		if (url[7] != '/' || url[8] == '\0')
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "not a Redis URL: %s", url_form);
		out->unix_path = strdup(url + 7);
		return out->unix_path ? PB_OK : PB_ERR_NOMEM;
	}
	bool tls = strncasecmp(url, "rediss://", 9) == 0;
	if (!tls && strncasecmp(url, "redis://", 8) != 0)
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "not a Redis URL: %s", url_form);
	CURLU *h = curl_url();
	if (!h)
		return PB_ERR_NOMEM;
	pb_err_t err = PB_OK;
	char *port = NULL, *path = NULL, *query = NULL, *frag = NULL;
	if (curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) !=
	    CURLUE_OK) {
		err = pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			      "not a Redis URL: %s", url_form);
		goto out;
	}
	out->tls = tls;
	if (!url_part(h, CURLUPART_HOST, 0, &out->host) ||
	    !url_part(h, CURLUPART_PORT, 0, &port) ||
	    !url_part(h, CURLUPART_USER, CURLU_URLDECODE, &out->user) ||
	    !url_part(h, CURLUPART_PASSWORD, CURLU_URLDECODE, &out->password) ||
	    !url_part(h, CURLUPART_PATH, 0, &path)) {
		err = pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			      "not a Redis URL: %s", url_form);
		goto out;
	}
	url_part(h, CURLUPART_QUERY, 0, &query);
	url_part(h, CURLUPART_FRAGMENT, 0, &frag);
	if (!out->host || !out->host[0] || query || frag) {
		err = pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			      "not a Redis URL (%s): %s",
			      query || frag ? "no ?query or #fragment"
					    : "no host",
			      url_form);
		goto out;
	}
	err = url_finish(out, port, path, errstr, errstr_size);
out:
	free(port);
	free(path);
	free(query);
	free(frag);
	curl_url_cleanup(h);
	if (err)
		pb_redis_url_clear(out);
	return err;
}

/* ---- the handle --------------------------------------------------------- */

static pb_err_t tls_error(char *errstr, size_t errstr_size, const char *what,
			  const char *file, const char *setting)
{
	char e[256];
	ERR_error_string_n(ERR_get_error(), e, sizeof(e));
	ERR_clear_error();
	return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
		       "redis.tls.%s: cannot load %s %s: %s (check the file "
		       "is readable and PEM)",
		       setting, what, file, e);
}

static pb_err_t tls_ctx_new(pb_redis_t *r, const pb_redis_opts_t *o,
			    char *errstr, size_t errstr_size)
{
	r->ctx = SSL_CTX_new(TLS_client_method());
	if (!r->ctx)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "cannot create a TLS context");
	SSL_CTX_set_min_proto_version(r->ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(r->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				     SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (o->ca_file && o->ca_file[0]) {
		if (SSL_CTX_load_verify_locations(r->ctx, o->ca_file, NULL) !=
		    1)
			return tls_error(errstr, errstr_size, "CA file",
					 o->ca_file, "caFile");
	} else {
		SSL_CTX_set_default_verify_paths(r->ctx);
	}
	bool cert = o->cert_file && o->cert_file[0];
	bool key = o->key_file && o->key_file[0];
	if (cert != key)
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "redis.tls: certFile and keyFile go together "
			       "(the client certificate and its key)");
	if (cert) {
		if (SSL_CTX_use_certificate_chain_file(r->ctx, o->cert_file) !=
		    1)
			return tls_error(errstr, errstr_size, "certificate",
					 o->cert_file, "certFile");
		if (SSL_CTX_use_PrivateKey_file(r->ctx, o->key_file,
						SSL_FILETYPE_PEM) != 1)
			return tls_error(errstr, errstr_size, "key",
					 o->key_file, "keyFile");
		if (SSL_CTX_check_private_key(r->ctx) != 1)
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "redis.tls.keyFile: the key does not "
				       "belong to certFile's certificate");
	}
	SSL_CTX_set_verify(r->ctx,
			   r->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	return PB_OK;
}

pb_err_t pb_redis_new(const pb_redis_opts_t *o, pb_redis_t **out, char *errstr,
		      size_t errstr_size)
{
	pb_redis_t *r = calloc(1, sizeof(*r));
	if (!r)
		return PB_ERR_NOMEM;
	r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
	pb_err_t err =
	    pb_redis_url_parse(o->url ? o->url : "redis://127.0.0.1:6379/0",
			       &r->url, errstr, errstr_size);
	if (err)
		goto fail;
	const char *pw = o->password ? o->password : r->url.password;
	if (r->url.user && !pw) {
		err = pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			      "redis.url names the user \"%s\" but no "
			      "password: add :PASSWORD to the URL or set "
			      "redis.password",
			      r->url.user);
		goto fail;
	}
	r->password = pb_strdup(pw);
	r->tls = o->tls || r->url.tls;
	r->verify = o->tls ? o->tls_verify : true;
	r->server_name = pb_strdup(o->server_name);
	r->master = pb_strdup(o->sentinel_master);
	r->sentinel_password = pb_strdup(o->sentinel_password);
	if (o->sentinel_nodes_len) {
		r->sentinels = calloc(o->sentinel_nodes_len, sizeof(char *));
		if (!r->sentinels) {
			err = PB_ERR_NOMEM;
			goto fail;
		}
		for (size_t i = 0; i < o->sentinel_nodes_len; i++)
			if ((r->sentinels[r->sentinels_len] =
				 strdup(o->sentinel_nodes[i])))
				r->sentinels_len++;
	}
	if (o->cluster_nodes_len) {
		r->cluster = calloc(o->cluster_nodes_len, sizeof(char *));
		if (!r->cluster) {
			err = PB_ERR_NOMEM;
			goto fail;
		}
		for (size_t i = 0; i < o->cluster_nodes_len; i++)
			if ((r->cluster[r->cluster_len] =
				 strdup(o->cluster_nodes[i])))
				r->cluster_len++;
	}
	if (r->tls) {
		err = tls_ctx_new(r, o, errstr, errstr_size);
		if (err)
			goto fail;
	}
	*out = r;
	return PB_OK;
fail:
	pb_redis_destroy(r);
	return err;
}

void pb_redis_destroy(pb_redis_t *r)
{
	if (!r)
		return;
	pb_redis_url_clear(&r->url);
	if (r->password)
		explicit_bzero(r->password, strlen(r->password));
	free(r->password);
	if (r->sentinel_password)
		explicit_bzero(r->sentinel_password,
			       strlen(r->sentinel_password));
	free(r->sentinel_password);
	free(r->server_name);
	free(r->master);
	for (size_t i = 0; i < r->sentinels_len; i++)
		free(r->sentinels[i]);
	free(r->sentinels);
	for (size_t i = 0; i < r->cluster_len; i++)
		free(r->cluster[i]);
	free(r->cluster);
	SSL_CTX_free(r->ctx);
	free(r);
}

bool pb_redis_tls(const pb_redis_t *r)
{
	return r->tls;
}

bool pb_redis_is_cluster(const pb_redis_t *r)
{
	return r->cluster != NULL;
}

int pb_redis_db(const pb_redis_t *r)
{
	return r->url.db;
}

/* ---- sockets ------------------------------------------------------------ */

/* Wait for events on fd until deadline; 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - pb_mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		return n;
	}
}

static int connect_addr(const struct sockaddr *sa, socklen_t len,
			int64_t deadline, int *err)
{
	int fd = socket(sa->sa_family,
			SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (connect(fd, sa, len) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		*err = errno;
		close(fd);
		return -1;
	}
	int w = wait_fd(fd, POLLOUT, deadline);
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
	    soerr == 0)
		return fd;
	*err = w == 0 ? ETIMEDOUT : soerr ? soerr : errno;
	close(fd);
	return -1;
}

static pb_err_t fail_with(pb_rc_fail_t *fail, pb_rc_fail_t f, char *errstr,
			  size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static pb_err_t fail_with(pb_rc_fail_t *fail, pb_rc_fail_t f, char *errstr,
			  size_t errstr_size, const char *fmt, ...)
{
	if (fail)
		*fail = f;
	if (errstr && errstr_size) {
		int n = snprintf(errstr, errstr_size,
				 "Redis %s: ", pb_rc_fail_name(f));
		if (n > 0 && (size_t)n < errstr_size) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(errstr + n, errstr_size - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return PB_ERR_REDIS;
}

/* A connected socket to host:port (DNS, then each address in turn). */
static pb_err_t tcp_open(const char *host, int port, int timeout_ms, int *fd,
			 pb_rc_fail_t *fail, char *errstr, size_t errstr_size)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_family = AF_UNSPEC};
	struct addrinfo *ai = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int rc = getaddrinfo(host, ps, &hints, &ai);
	if (rc != 0)
		return fail_with(fail, PB_RC_DNS, errstr, errstr_size,
				 "cannot resolve \"%s\": %s (check the host "
				 "name in the Redis settings and the DNS)",
				 host, gai_strerror(rc));
	int64_t deadline = pb_mono_ms() + timeout_ms;
	int e = 0;
	*fd = -1;
	for (struct addrinfo *a = ai; a && *fd < 0; a = a->ai_next)
		*fd = connect_addr(a->ai_addr, a->ai_addrlen, deadline, &e);
	freeaddrinfo(ai);
	if (*fd < 0)
		return fail_with(fail, PB_RC_TCP, errstr, errstr_size,
				 "cannot connect to %s port %d: %s (is Redis "
				 "running there and reachable from here?)",
				 host, port, strerror(e));
	int one = 1;
	setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return PB_OK;
}

static pb_err_t unix_open(const char *path, int timeout_ms, int *fd,
			  pb_rc_fail_t *fail, char *errstr, size_t errstr_size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return fail_with(fail, PB_RC_TCP, errstr, errstr_size,
				 "socket path %s is too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int e = 0;
	*fd = connect_addr((struct sockaddr *)&sa, sizeof(sa),
			   pb_mono_ms() + timeout_ms, &e);
	if (*fd < 0)
		return fail_with(fail, PB_RC_TCP, errstr, errstr_size,
				 "cannot connect to unix socket %s: %s (is "
				 "Redis running with unixsocket there?)",
				 path, strerror(e));
	return PB_OK;
}

/* ---- TLS ---------------------------------------------------------------- */

static bool is_ip_literal(const char *h)
{
	unsigned char b[16];
	return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

static void ssl_reason(SSL *ssl, int rc, char *buf, size_t size)
{
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, size);
	else if (SSL_get_error(ssl, rc) == SSL_ERROR_SYSCALL)
		snprintf(buf, size,
			 "connection closed during the handshake "
			 "(does the server speak TLS on this "
			 "port?)");
	else
		snprintf(buf, size, "handshake failed");
	ERR_clear_error();
}

static pb_err_t tls_start(pb_redis_t *r, pb_rconn_t *c, const char *host,
			  pb_rc_fail_t *fail, char *errstr, size_t errstr_size)
{
	c->ssl = SSL_new(r->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		return fail_with(fail, PB_RC_TLS, errstr, errstr_size,
				 "cannot create a TLS session");
	const char *name = r->server_name ? r->server_name : host;
	if (name && !is_ip_literal(name))
		SSL_set_tlsext_host_name(c->ssl, name);
	if (r->verify && name) {
		if (is_ip_literal(name))
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl),
						      name);
		else
			SSL_set1_host(c->ssl, name);
	}
	int64_t deadline = pb_mono_ms() + c->timeout_ms;
	for (;;) {
		ERR_clear_error();
		int rc = SSL_connect(c->ssl);
		if (rc == 1)
			return PB_OK;
		int se = SSL_get_error(c->ssl, rc);
		short ev = se == SSL_ERROR_WANT_READ	? POLLIN
			   : se == SSL_ERROR_WANT_WRITE ? POLLOUT
							: 0;
		if (ev && wait_fd(c->fd, ev, deadline) == 1)
			continue;
		long v = SSL_get_verify_result(c->ssl);
		if (v != X509_V_OK)
			return fail_with(
			    fail, PB_RC_TLS_VERIFY, errstr, errstr_size,
			    "the certificate of %s was refused: %s (check "
			    "redis.tls.caFile and redis.tls.serverName; the "
			    "name must be in the certificate)",
			    c->peer, X509_verify_cert_error_string(v));
		char why[256];
		if (ev)
			snprintf(why, sizeof(why), "timed out after %d ms",
				 c->timeout_ms);
		else
			ssl_reason(c->ssl, rc, why, sizeof(why));
		return fail_with(fail, PB_RC_TLS, errstr, errstr_size,
				 "handshake with %s failed: %s (does the "
				 "server expect TLS, and a client "
				 "certificate: redis.tls.certFile?)",
				 c->peer, why);
	}
}

/* ---- a connection ------------------------------------------------------- */

void pb_rconn_close(pb_rconn_t *c)
{
	if (!c)
		return;
	pb_cluster_close(c->cl);
	if (c->ssl) {
		SSL_shutdown(c->ssl); /* best effort, non-blocking */
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	if (c->reader)
		redisReaderFree(c->reader);
	free(c->in);
	free(c->out);
	free(c);
}

int pb_rconn_fd(const pb_rconn_t *c)
{
	if (c && c->cl)
		return pb_cluster_fd(c->cl);
	return c ? c->fd : -1;
}

const char *pb_rconn_peer(const pb_rconn_t *c)
{
	return c->peer;
}

bool pb_rconn_append(pb_rconn_t *c, const char *buf, size_t len)
{
	if (c->cl)
		return pb_cluster_append(c->cl, buf, len);
	if (c->out_len + len > c->out_cap) {
		size_t nc = c->out_cap ? c->out_cap : 4096;
		while (nc < c->out_len + len)
			nc *= 2;
		char *n = realloc(c->out, nc);
		if (!n)
			return false;
		c->out = n;
		c->out_cap = nc;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	return true;
}

/* One write of buf; >0 written, 0 would block (*ev what to wait for), -1
 * failed. */
static ssize_t raw_write(pb_rconn_t *c, const char *buf, size_t len, short *ev)
{
	*ev = POLLOUT;
	if (!c->ssl) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		return n;
	}
	ERR_clear_error();
	int n = SSL_write(c->ssl, buf, len > 1 << 30 ? 1 << 30 : (int)len);
	if (n > 0)
		return n;
	int se = SSL_get_error(c->ssl, n);
	if (se == SSL_ERROR_WANT_READ)
		*ev = POLLIN;
	return se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

pb_err_t pb_rconn_flush(pb_rconn_t *c, char *errstr, size_t errstr_size)
{
	if (c->cl)
		return pb_cluster_flush(c->cl, errstr, errstr_size);
	size_t off = 0;
	int64_t deadline = pb_mono_ms() + c->timeout_ms;
	while (off < c->out_len) {
		short ev;
		ssize_t n = raw_write(c, c->out + off, c->out_len - off, &ev);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == 0 && wait_fd(c->fd, ev, deadline) == 1)
			continue;
		c->out_len = 0;
		return pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			       "Redis connection to %s failed while "
			       "writing: %s",
			       c->peer, n == 0 ? "timed out" : strerror(errno));
	}
	c->out_len = 0;
	return PB_OK;
}

/* The reader is fed this much at a time from the input buffer (see the
 * invariants); the input buffer grows by reads of PB_RC_READ and is let go
 * once drained when it has grown past PB_RC_IN_KEEP. */
enum {
	PB_RC_FEED = 4096,
	PB_RC_READ = 16384,
	PB_RC_IN_KEEP = 1 << 20,
};

/* Make room for one read at the end of the input buffer, which is empty
 * whenever a read is due (replies are pulled from it first). */
static bool in_room(pb_rconn_t *c)
{
	if (c->in_pos == c->in_len) {
		c->in_pos = c->in_len = 0;
		if (c->in_cap > PB_RC_IN_KEEP) {
			free(c->in);
			c->in = NULL;
			c->in_cap = 0;
		}
	}
	if (c->in_cap - c->in_len >= PB_RC_READ)
		return true;
	size_t nc = c->in_cap ? c->in_cap * 2 : PB_RC_READ;
	while (nc - c->in_len < PB_RC_READ)
		nc *= 2;
	char *n = realloc(c->in, nc);
	if (!n)
		return false;
	c->in = n;
	c->in_cap = nc;
	return true;
}

/* One read into the input buffer: >0 bytes read, 0 nothing there yet, -1
 * closed or failed (errstr says which). */
static ssize_t read_once(pb_rconn_t *c, char *errstr, size_t errstr_size)
{
	char *buf = c->in + c->in_len;
	if (c->ssl) {
		ERR_clear_error();
		int k = SSL_read(c->ssl, buf, PB_RC_READ);
		if (k > 0)
			return k;
		int se = SSL_get_error(c->ssl, k);
		if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE)
			return 0;
		pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			"Redis connection to %s closed (TLS)", c->peer);
		return -1;
	}
	ssize_t n = recv(c->fd, buf, PB_RC_READ, 0);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n <= 0) {
		pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			"Redis connection to %s %s", c->peer,
			n == 0 ? "closed by the server" : strerror(errno));
		return -1;
	}
	return n;
}

/* Read what the socket has into the input buffer. 1 read something, 0
 * nothing there yet, -1 closed or failed (errstr says which). */
static int read_some(pb_rconn_t *c, char *errstr, size_t errstr_size)
{
	int got = 0;
	for (;;) {
		if (!in_room(c)) {
			pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
				"out of memory reading from Redis");
			return -1;
		}
		ssize_t n = read_once(c, errstr, errstr_size);
		if (n <= 0)
			return n < 0 ? -1 : got;
		c->in_len += (size_t)n;
		got = 1;
		if (!c->ssl && (size_t)n < PB_RC_READ)
			return got;
	}
}

/* Feed the reader the next slice of the input buffer. 1 fed, 0 nothing
 * left to feed, -1 out of memory. */
static int feed_some(pb_rconn_t *c)
{
	size_t n = c->in_len - c->in_pos;
	if (n == 0)
		return 0;
	if (n > PB_RC_FEED)
		n = PB_RC_FEED;
	if (redisReaderFeed(c->reader, c->in + c->in_pos, n) != REDIS_OK)
		return -1;
	c->in_pos += n;
	return 1;
}

pb_err_t pb_rconn_reply(pb_rconn_t *c, bool wait, redisReply **out,
			char *errstr, size_t errstr_size)
{
	*out = NULL;
	if (c->cl)
		return pb_cluster_reply(c->cl, wait, out, errstr, errstr_size);
	/* the deadline is read off the clock only when a wait needs it: a
	 * reply already buffered (most of a pipelined stage's) needs none */
	int64_t deadline = -1;
	bool polled = false;
	for (;;) {
		void *rep = NULL;
		if (redisReaderGetReply(c->reader, &rep) != REDIS_OK)
			return pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				       "Redis protocol error from %s: %s",
				       c->peer, c->reader->errstr);
		if (rep) {
			*out = rep;
			return PB_OK;
		}
		int fed = feed_some(c);
		if (fed < 0)
			return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
				       "out of memory reading from Redis");
		if (fed)
			continue;
		if (!wait && polled)
			return PB_OK;
		int w;
		if (wait) {
			if (deadline < 0)
				deadline = pb_mono_ms() + c->timeout_ms;
			w = wait_fd(c->fd, POLLIN, deadline);
		} else {
			struct pollfd p = {.fd = c->fd, .events = POLLIN};
			w = poll(&p, 1, 0);
		}
		if (w < 0 || (w == 0 && wait))
			return pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				       "Redis at %s did not answer within "
				       "%d ms",
				       c->peer, c->timeout_ms);
		polled = true;
		if (w == 0)
			return PB_OK;
		if (read_some(c, errstr, errstr_size) < 0)
			return PB_ERR_REDIS;
	}
}

redisReply *pb_rconn_command(pb_rconn_t *c, char *errstr, size_t errstr_size,
			     int argc, const char **argv)
{
	char *cmd = NULL;
	int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
	if (len < 0) {
		pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			"out of memory formatting a Redis command");
		return NULL;
	}
	bool ok = pb_rconn_append(c, cmd, (size_t)len);
	redisFreeCommand(cmd);
	redisReply *r = NULL;
	if (!ok || pb_rconn_flush(c, errstr, errstr_size) ||
	    pb_rconn_reply(c, true, &r, errstr, errstr_size))
		return NULL;
	return r;
}

/* ---- connecting --------------------------------------------------------- */

static pb_err_t conn_open(pb_redis_t *r, const char *host, int port,
			  const char *unix_path, pb_rconn_t **out,
			  pb_rc_fail_t *fail, char *errstr, size_t errstr_size)
{
	pb_rconn_t *c = calloc(1, sizeof(*c));
	if (!c)
		return PB_ERR_NOMEM;
	c->fd = -1;
	c->timeout_ms = r->timeout_ms;
	if (unix_path)
		snprintf(c->peer, sizeof(c->peer), "%s", unix_path);
	else
		snprintf(c->peer, sizeof(c->peer),
			 strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	c->reader = pb_reply_reader_new();
	pb_err_t err = c->reader ? PB_OK : PB_ERR_NOMEM;
	if (!err)
		err = unix_path ? unix_open(unix_path, r->timeout_ms, &c->fd,
					    fail, errstr, errstr_size)
				: tcp_open(host, port, r->timeout_ms, &c->fd,
					   fail, errstr, errstr_size);
	if (!err && r->tls && !unix_path)
		err = tls_start(r, c, host, fail, errstr, errstr_size);
	if (err) {
		pb_rconn_close(c);
		return err;
	}
	*out = c;
	return PB_OK;
}

/* Send a command whose answer must be +OK (or any non-error); a refusal is
 * reported as step f. */
static pb_err_t setup_cmd(pb_rconn_t *c, pb_rc_fail_t f, const char *what,
			  pb_rc_fail_t *fail, char *errstr, size_t errstr_size,
			  int argc, const char **argv)
{
	char e[256];
	redisReply *rep = pb_rconn_command(c, e, sizeof(e), argc, argv);
	if (!rep)
		return fail_with(fail, PB_RC_PROTOCOL, errstr, errstr_size,
				 "%s at %s got no answer: %s (is this a Redis "
				 "server%s?)",
				 argv[0], c->peer, e,
				 f == PB_RC_AUTH ? ", and does it expect "
						   "TLS (rediss://)"
						 : "");
	pb_err_t err = PB_OK;
	if (rep->type == REDIS_REPLY_ERROR)
		err = fail_with(fail, f, errstr, errstr_size,
				"%s at %s was "
				"refused: %.160s (%s)",
				argv[0], c->peer, rep->str, what);
	pb_reply_free(rep);
	return err;
}

static pb_err_t login(pb_redis_t *r, pb_rconn_t *c, const char *password,
		      const char *user, pb_rc_fail_t *fail, char *errstr,
		      size_t errstr_size)
{
	if (!password)
		return PB_OK;
	const char *argv[3] = {"AUTH", user ? user : password, password};
	char what[160];
	snprintf(what, sizeof(what),
		 "check the %s%s%s and password in redis.url or "
		 "redis.password, and that the ACL user is enabled",
		 user ? "user \"" : "user", user ? user : "", user ? "\"" : "");
	(void)r;
	return setup_cmd(c, PB_RC_AUTH, what, fail, errstr, errstr_size,
			 user ? 3 : 2, argv);
}

pb_err_t pb_redis_dial_node(pb_redis_t *r, const char *host, int port,
			    pb_rconn_t **out, pb_rc_fail_t *fail, char *errstr,
			    size_t errstr_size)
{
	pb_rconn_t *c = NULL;
	pb_err_t err =
	    conn_open(r, host, port, NULL, &c, fail, errstr, errstr_size);
	if (!err)
		err = login(r, c, r->password, r->url.user, fail, errstr,
			    errstr_size);
	if (err) {
		pb_rconn_close(c);
		return err;
	}
	*out = c;
	return PB_OK;
}

/* SELECT db, then (with Sentinel) ROLE: the server must be the master. */
static pb_err_t finish(pb_redis_t *r, pb_rconn_t *c, pb_rc_fail_t *fail,
		       char *errstr, size_t errstr_size)
{
	if (r->url.db) {
		char db[16];
		snprintf(db, sizeof(db), "%d", r->url.db);
		const char *argv[2] = {"SELECT", db};
		pb_err_t err = setup_cmd(c, PB_RC_AUTH,
					 "the ACL user needs SELECT, or use "
					 "database 0",
					 fail, errstr, errstr_size, 2, argv);
		if (err)
			return err;
	}
	if (!r->master)
		return PB_OK;
	const char *argv[1] = {"ROLE"};
	char e[256];
	redisReply *rep = pb_rconn_command(c, e, sizeof(e), 1, argv);
	bool master = rep && rep->type == REDIS_REPLY_ARRAY &&
		      rep->elements > 0 &&
		      rep->element[0]->type == REDIS_REPLY_STRING &&
		      strcmp(rep->element[0]->str, "master") == 0;
	pb_err_t err =
	    master ? PB_OK
		   : fail_with(fail, PB_RC_PROTOCOL, errstr, errstr_size,
			       "%s, named master by Sentinel, is "
			       "not the master (%s; a failover may "
			       "be under way, retried)",
			       c->peer, rep ? "ROLE says otherwise" : e);
	if (rep)
		pb_reply_free(rep);
	return err;
}

bool pb_redis_split_hostport(const char *s, char *host, size_t size, int *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s)
		return false;
	const char *h = s, *he = colon;
	if (s[0] == '[') {
		if (colon[-1] != ']')
			return false;
		h = s + 1;
		he = colon - 1;
	}
	int64_t p;
	if ((size_t)(he - h) >= size || !pb_parse_i64(colon + 1, &p) || p < 1 ||
	    p > 65535)
		return false;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	*port = (int)p;
	return true;
}

/* Ask one Sentinel for the master's address. */
static pb_err_t sentinel_ask(pb_redis_t *r, const char *node, char *host,
			     size_t host_size, int *port, pb_rc_fail_t *fail,
			     char *errstr, size_t errstr_size)
{
	char sh[256];
	int sp;
	if (!pb_redis_split_hostport(node, sh, sizeof(sh), &sp))
		return fail_with(fail, PB_RC_PROTOCOL, errstr, errstr_size,
				 "Sentinel node is not HOST:PORT");
	pb_rconn_t *c = NULL;
	pb_err_t err =
	    conn_open(r, sh, sp, NULL, &c, fail, errstr, errstr_size);
	if (!err)
		err = login(r, c, r->sentinel_password, NULL, fail, errstr,
			    errstr_size);
	if (err) {
		pb_rconn_close(c);
		return err;
	}
	const char *argv[3] = {"SENTINEL", "get-master-addr-by-name",
			       r->master};
	char e[256];
	redisReply *rep = pb_rconn_command(c, e, sizeof(e), 3, argv);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_STRING &&
	    rep->element[1]->type == REDIS_REPLY_STRING &&
	    rep->element[0]->len < host_size) {
		int64_t p;
		memcpy(host, rep->element[0]->str, rep->element[0]->len + 1);
		err =
		    pb_parse_i64(rep->element[1]->str, &p) && p > 0 && p < 65536
			? PB_OK
			: PB_ERR_REDIS;
		*port = (int)p;
	} else {
		err = PB_ERR_REDIS;
	}
	if (err)
		fail_with(fail, PB_RC_PROTOCOL, errstr, errstr_size,
			  "Sentinel %s does not know the master \"%s\" (%s; "
			  "check redis.sentinel.masterName)",
			  c->peer, r->master,
			  !rep				   ? e
			  : rep->type == REDIS_REPLY_ERROR ? rep->str
							   : "no address");
	if (rep)
		pb_reply_free(rep);
	pb_rconn_close(c);
	return err;
}

/* Through the Sentinels, in order, until one names a master that answers
 * ROLE master. The last failure is what errstr says. */
static pb_err_t dial_sentinel(pb_redis_t *r, pb_rconn_t **out,
			      pb_rc_fail_t *fail, char *errstr,
			      size_t errstr_size)
{
	pb_err_t err = fail_with(fail, PB_RC_PROTOCOL, errstr, errstr_size,
				 "no Sentinel configured");
	for (size_t i = 0; i < r->sentinels_len; i++) {
		char host[256];
		int port = 0;
		err = sentinel_ask(r, r->sentinels[i], host, sizeof(host),
				   &port, fail, errstr, errstr_size);
		if (err)
			continue;
		pb_rconn_t *c = NULL;
		err = pb_redis_dial_node(r, host, port, &c, fail, errstr,
					 errstr_size);
		if (!err)
			err = finish(r, c, fail, errstr, errstr_size);
		if (!err) {
			*out = c;
			return PB_OK;
		}
		pb_rconn_close(c);
	}
	return err;
}

/* A handle whose calls all go to the Cluster (redis_cluster.h). */
static pb_err_t dial_cluster(pb_redis_t *r, pb_rconn_t **out,
			     pb_rc_fail_t *fail, char *errstr,
			     size_t errstr_size)
{
	pb_rconn_t *c = calloc(1, sizeof(*c));
	if (!c)
		return PB_ERR_NOMEM;
	c->fd = -1;
	c->timeout_ms = r->timeout_ms;
	snprintf(c->peer, sizeof(c->peer), "Redis Cluster");
	pb_err_t err =
	    pb_cluster_open(r, r->cluster, r->cluster_len, r->cluster_next++,
			    &c->cl, fail, errstr, errstr_size);
	if (err) {
		free(c);
		return err;
	}
	*out = c;
	return PB_OK;
}

pb_err_t pb_redis_dial(pb_redis_t *r, pb_rconn_t **out, pb_rc_fail_t *fail,
		       char *errstr, size_t errstr_size)
{
	if (fail)
		*fail = PB_RC_OK;
	if (r->cluster)
		return dial_cluster(r, out, fail, errstr, errstr_size);
	if (r->master)
		return dial_sentinel(r, out, fail, errstr, errstr_size);
	pb_rconn_t *c = NULL;
	pb_err_t err = conn_open(r, r->url.host, r->url.port, r->url.unix_path,
				 &c, fail, errstr, errstr_size);
	if (!err)
		err = login(r, c, r->password, r->url.user, fail, errstr,
			    errstr_size);
	if (!err)
		err = finish(r, c, fail, errstr, errstr_size);
	if (err) {
		pb_rconn_close(c);
		return err;
	}
	*out = c;
	return PB_OK;
}

void pb_redis_masters_close(pb_rconn_t **c, size_t n)
{
	for (size_t i = 0; c && i < n; i++)
		pb_rconn_close(c[i]);
	free(c);
}

pb_err_t pb_rconn_all_empty(pb_rconn_t **c, size_t n, bool *empty,
			    bool *refused, char *errstr, size_t errstr_size)
{
	*empty = true;
	*refused = false;
	const char *dbsize[] = {"DBSIZE"};
	for (size_t i = 0; i < n && *empty; i++) {
		redisReply *x =
		    pb_rconn_command(c[i], errstr, errstr_size, 1, dbsize);
		if (!x) {
			*empty = false;
			return PB_ERR_REDIS;
		}
		bool ok = x->type == REDIS_REPLY_INTEGER;
		if (ok)
			*empty = x->integer == 0;
		else
			pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				"Redis at %s refused DBSIZE: %s",
				pb_rconn_peer(c[i]),
				x->type == REDIS_REPLY_ERROR ? x->str
							     : "no integer");
		pb_reply_free(x);
		if (!ok) {
			*empty = false; /* not known to be */
			*refused = true;
			return PB_ERR_REDIS;
		}
	}
	return PB_OK;
}

pb_err_t pb_redis_empty(pb_redis_t *r, pb_rconn_t *c, bool *empty,
			bool *refused, char *errstr, size_t errstr_size)
{
	*empty = false;
	*refused = false;
	if (!r->cluster)
		return pb_rconn_all_empty(&c, 1, empty, refused, errstr,
					  errstr_size);
	pb_rconn_t **m = NULL;
	size_t n = 0;
	pb_err_t err =
	    pb_redis_dial_masters(r, &m, &n, NULL, errstr, errstr_size);
	if (!err)
		err = pb_rconn_all_empty(m, n, empty, refused, errstr,
					 errstr_size);
	pb_redis_masters_close(m, n);
	return err;
}

/* Each master of the slot map a seed gives, dialled on its own. */
static pb_err_t dial_cluster_masters(pb_redis_t *r, pb_rconn_t ***out,
				     size_t *n, pb_rc_fail_t *fail,
				     char *errstr, size_t errstr_size)
{
	pb_cluster_t *cl = NULL;
	pb_err_t err =
	    pb_cluster_open(r, r->cluster, r->cluster_len, r->cluster_next++,
			    &cl, fail, errstr, errstr_size);
	const char *host;
	int port;
	bool serves;
	size_t all = 0;
	while (!err && pb_cluster_node_at(cl, all, &host, &port, &serves))
		all++;
	pb_rconn_t **c = err ? NULL : calloc(all ? all : 1, sizeof(*c));
	if (!err && !c)
		err = PB_ERR_NOMEM;
	for (size_t i = 0; !err && i < all; i++) {
		pb_cluster_node_at(cl, i, &host, &port, &serves);
		if (serves)
			err = pb_redis_dial_node(r, host, port, &c[(*n)++],
						 fail, errstr, errstr_size);
	}
	pb_cluster_close(cl);
	if (err) {
		pb_redis_masters_close(c, *n);
		*n = 0;
		return err;
	}
	*out = c;
	return PB_OK;
}

pb_err_t pb_redis_dial_masters(pb_redis_t *r, pb_rconn_t ***out, size_t *n,
			       pb_rc_fail_t *fail, char *errstr,
			       size_t errstr_size)
{
	*out = NULL;
	*n = 0;
	if (fail)
		*fail = PB_RC_OK;
	if (r->cluster)
		return dial_cluster_masters(r, out, n, fail, errstr,
					    errstr_size);
	pb_rconn_t **c = calloc(1, sizeof(*c));
	if (!c)
		return PB_ERR_NOMEM;
	pb_err_t err = pb_redis_dial(r, &c[0], fail, errstr, errstr_size);
	if (err) {
		free(c);
		return err;
	}
	*out = c;
	*n = 1;
	return PB_OK;
}
