/*
 * relay_it.h: helpers the relay web service's integration suites share
 * (test_relay*.c): calling the service as Pruvan does, awaiting outcomes,
 * digests, the relay part of a worker configuration. Static functions, one
 * copy per suite.
 */
#ifndef PB_RELAY_IT_H
#define PB_RELAY_IT_H

#include <sys/wait.h>

/* The relay port from the worker's "relay endpoint listening" line. */
static inline int relay_port(h_worker_t *w)
{
	/* await the line, but not past the worker's exit */
	int64_t deadline = pb_mono_ms() + WAIT_MS;
	while (!h_worker_log_has(w, "relay endpoint listening", 0)) {
		if (!h_worker_running(w) || pb_mono_ms() >= deadline)
			return -1;
		h_nap_ms(20);
	}
	char *text = h_read_file(h_worker_log(w), NULL);
	char *line = text ? strstr(text, "relay endpoint listening") : NULL;
	int port = -1;
	if (line) {
		while (line > text && line[-1] != '\n')
			line--;
		char *end = strchr(line, '\n');
		json_t *j = json_loadb(
		    line, end ? (size_t)(end - line) : strlen(line), 0, NULL);
		const char *p = json_string_value(json_object_get(j, "port"));
		if (p)
			port = (int)strtol(p, NULL, 10);
		json_decref(j);
	}
	free(text);
	return port;
}

/*
 * POST to the relay as Pruvan does: multipart with a payload part and a
 * photo (PHOTO_BYTES of 0xff) when multipart, else a urlencoded
 * payload=...; header may be NULL. Returns the status; *body the parsed
 * answer (new ref, may be NULL).
 */
#define PHOTO_BYTES (64 * 1024)
static inline long post(int port, const char *path, const char *header,
			const char *payload, bool multipart, json_t **body)
{
	char url[512];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	CURL *c = curl_easy_init();
	h_body_t t = {0};
	struct curl_slist *h = header ? curl_slist_append(NULL, header) : NULL;
	curl_mime *mime = NULL;
	char *form = NULL;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_curl_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
	if (h)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (multipart) {
		static char photo[PHOTO_BYTES];
		memset(photo, 0xff, sizeof(photo));
		mime = curl_mime_init(c);
		curl_mimepart *part = curl_mime_addpart(mime);
		curl_mime_name(part, "payload");
		curl_mime_data(part, payload, CURL_ZERO_TERMINATED);
		part = curl_mime_addpart(mime);
		curl_mime_name(part, "file");
		curl_mime_filename(part, "p.jpg");
		curl_mime_type(part, "image/jpeg");
		curl_mime_data(part, photo, sizeof(photo));
		curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	} else {
		char *esc = curl_easy_escape(c, payload, 0);
		size_t n = strlen(esc) + 16;
		form = malloc(n);
		snprintf(form, n, "payload=%s", esc);
		curl_free(esc);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	}
	long st = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	curl_mime_free(mime);
	free(form);
	*body = t.data ? json_loads(t.data, 0, NULL) : NULL;
	free(t.data);
	return st;
}

/* Await n results and return the outcomes of id (array, borrowed from
 * *by which the caller releases). */
static inline json_t *outcomes(long n, const char *id, json_t **by)
{
	assert_true(h_await_count(H_TOPIC_RESULTS, n, WAIT_MS) >= n);
	json_t *recs = h_consume(H_TOPIC_RESULTS, n, WAIT_MS);
	assert_true((long)json_array_size(recs) >= n);
	*by = h_by_event(recs);
	json_decref(recs);
	json_t *all = json_object_get(*by, id);
	if (!all)
		fail_msg("no outcome for %s", id);
	return all;
}

static inline void sha256_hex(const void *d, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int len = 0;
	EVP_Digest(d, n, md, &len, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static inline void sha1_hex(const char *s, char out[41])
{
	unsigned char md[20];
	unsigned int len = 0;
	EVP_Digest(s, strlen(s), md, &len, EVP_sha1(), NULL);
	for (unsigned i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The relay section and acme's credentials, merged into overrides. */
static inline json_t *relay_config(const char *media, json_t *accounts)
{
	setenv("PB_IT_RELAY_TOKEN", TOKEN, 1);
	setenv("PB_IT_RELAY_PASSWORD", PASSWORD, 1);
	return json_pack("{s:{s:s, s:s, s:i}, s:o}", "relay", "listen",
			 "127.0.0.1:0", "mediaDir", media, "ackTimeoutMs", 1500,
			 "accounts", accounts);
}

static inline json_t *relay_creds(void)
{
	return json_pack("{s:s, s:s, s:s}", "username", "acme-int", "password",
			 "env:PB_IT_RELAY_PASSWORD", "token",
			 "env:PB_IT_RELAY_TOKEN");
}

/* The configuration the relay suites share, written to config.json of the
 * test's directory: acme (internal, user jsmith, deletes allowed) with its
 * relay credentials, media under the test's media/. The media folder's
 * path into media, the file's into cfg. */
static inline void write_acme_relay_config(char *media, size_t media_size,
					   char *cfg, size_t size)
{
	h_path(media, media_size, "media");
	json_t *ov = relay_config(
	    media, json_pack("{s:{s:s, s:[s], s:b, s:o}}", "acme", "mode",
			     "internal", "users", "jsmith", "allowDeletes", 1,
			     "relay", relay_creds()));
	assert_int_equal(h_write_config("config.json", ov, cfg, size), 0);
	json_decref(ov);
}

static inline bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* The learned-key account "lrn", on a worker of its own. */
static inline h_worker_t *learned_worker(const char *label, const char *cfg,
					 int *relay, int *ops)
{
	h_worker_t *w = h_worker_run(label, cfg, false);
	assert_non_null(w);
	*relay = relay_port(w);
	assert_true(*relay > 0);
	*ops = h_worker_ops_port(w, WAIT_MS);
	assert_true(*ops > 0);
	return w;
}

static inline void validate(int port, const char *key)
{
	char sha[41], payload[512];
	sha1_hex(PASSWORD, sha);
	snprintf(payload, sizeof(payload),
		 "{\"username\":\"acme-int\",\"password\":\"%s\","
		 "\"token\":\"\",\"pushkey\":\"%s\"}",
		 sha, key);
	json_t *ans = NULL;
	assert_int_equal(
	    post(port, "/pruvan/lrn/validate.php", NULL, payload, false, &ans),
	    200);
	assert_string_equal(h_str(ans, "error"), "");
	assert_true(json_is_true(json_object_get(ans, "validated")));
	json_decref(ans);
}

/* Orders pushed to the sim under apiKey key. */
static inline size_t pushed_to(const char *key, const char *won)
{
	json_t *p = h_sim_pushes_of(key, won);
	size_t n = json_array_size(p);
	json_decref(p);
	return n;
}

/*
 * Run pruvan-call (PB_CALL) against the relay on port for account "lrn" or
 * "acme" with acme-int's credentials from the environment; its stdout
 * (the answer) into *out (owned). Returns its exit status.
 */
static inline int pruvan_call(int port, const char *account, const char *args,
			      char **out)
{
	const char *bin = getenv("PB_CALL");
	assert_non_null(bin);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "%s --url http://127.0.0.1:%d/pruvan/%s --username acme-int "
		 "--password-env PB_IT_RELAY_PASSWORD --ext aspx %s",
		 bin, port, account, args);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	int st = pclose(f);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Both replicas hold their partitions. Awaited before a test relies on
 * either and before it stops them: librdkafka 2.0.2 aborts a consumer
 * destroyed before its first cooperative-sticky assignment
 * (rd_kafka_sticky_assignor_state_destroy, fixed upstream in 2.3.0).
 */
static inline void await_assigned(h_worker_t *a, h_worker_t *b)
{
	assert_true(h_worker_log_has(a, "partitions assigned", WAIT_MS));
	assert_true(h_worker_log_has(b, "partitions assigned", WAIT_MS));
}

#endif
