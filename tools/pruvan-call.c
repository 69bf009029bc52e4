/*
 * pruvan-call: calls a remote system's web service the way Pruvan does
 * (the worker's relay, contract 5.1), for the demo, the tests and checking
 * a deployment by hand. It is the other half of the simulator: pruvan-sim
 * receives pushes as Pruvan would, pruvan-call makes Pruvan's calls.
 *
 * USAGE
 *   pruvan-call --url URL --username U [--password-env NAME]
 *               [--token-env NAME] [--ext EXT] METHOD [ARGS]
 *     --url URL          the web service URL of the integration's setup,
 *                        e.g. http://127.0.0.1:9465/pruvan/acme-internal
 *     --username U       the integration's username
 *     --password-env N   environment variable holding the password: sent
 *                        as its SHA-1 in hex, as Pruvan does
 *     --token-env N      environment variable holding the API token
 *     --ext EXT          the setup's file extension (default php): the
 *                        call goes to URL/METHOD.EXT
 *   METHOD and ARGS:
 *     validate --pushkey KEY
 *     getWorkOrders [--timestamp UNIX_SECONDS]     (none: a full refresh)
 *     status --entry JSON [--entry JSON ...]       workOrders entries, e.g.
 *            '{"workOrderNumber":"WO-1","fieldStatus":"complete"}'
 *     uploadPictures --meta JSON --file PATH [--content-type TYPE]
 *            multipart: the metadata (credentials added) in the field
 *            payload and the file in the part file, as Pruvan sends them
 *   Bodies are multipart for uploadPictures and urlencoded payload=JSON
 *   for the others. The answer is printed on stdout; exit 0 when it is
 *   HTTP 200 and Pruvan would read it as success (validated true, status
 *   true, or a workOrders list), 1 otherwise (the status on stderr), 2 for
 *   a usage mistake. Secrets come only from the environment, never argv.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

typedef struct {
	const char *url, *username, *password, *token, *ext, *method;
	const char *pushkey, *timestamp, *meta, *file, *content_type;
	json_t *entries;
} args_t;

typedef struct {
	char *data;
	size_t len;
} body_t;

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	body_t *b = ud;
	char *nd = realloc(b->data, b->len + size * n + 1);
	if (!nd)
		return 0;
	memcpy(nd + b->len, p, size * n);
	b->data = nd;
	b->len += size * n;
	b->data[b->len] = '\0';
	return size * n;
}

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "pruvan-call: %s\n", why);
	fprintf(stderr,
		"usage: pruvan-call --url URL --username U [--password-env N] "
		"[--token-env N] [--ext EXT] METHOD [ARGS]\n"
		"  validate --pushkey KEY | getWorkOrders [--timestamp S] |\n"
		"  status --entry JSON... | uploadPictures --meta JSON --file "
		"PATH [--content-type T]\n");
	return EXIT_USAGE;
}

static void sha1_hex(const char *s, char out[41])
{
	unsigned char d[20];
	unsigned int n = 0;
	EVP_Digest(s, strlen(s), d, &n, EVP_sha1(), NULL);
	for (unsigned i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static const char *env_secret(const char *name, int *bad)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		fprintf(stderr,
			"pruvan-call: environment variable %s is not set: "
			"export it with the secret of the integration\n",
			name);
		*bad = 1;
	}
	return v;
}

/* Options; returns 0, or EXIT_USAGE after saying why. */
static int parse(int argc, char **argv, args_t *a)
{
	int bad = 0;
	a->ext = "php";
	a->entries = json_array();
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (o[0] != '-' || o[1] != '-') {
			if (a->method)
				return usage("one METHOD only");
			a->method = o;
			continue;
		}
		if (!v)
			return usage("an option needs a value");
		i++;
		if (!strcmp(o, "--url"))
			a->url = v;
		else if (!strcmp(o, "--username"))
			a->username = v;
		else if (!strcmp(o, "--password-env"))
			a->password = env_secret(v, &bad);
		else if (!strcmp(o, "--token-env"))
			a->token = env_secret(v, &bad);
		else if (!strcmp(o, "--ext"))
			a->ext = v;
		else if (!strcmp(o, "--pushkey"))
			a->pushkey = v;
		else if (!strcmp(o, "--timestamp"))
			a->timestamp = v;
		else if (!strcmp(o, "--meta"))
			a->meta = v;
		else if (!strcmp(o, "--file"))
			a->file = v;
		else if (!strcmp(o, "--content-type"))
			a->content_type = v;
		else if (!strcmp(o, "--entry")) {
			json_t *e = json_loads(v, 0, NULL);
			if (!json_is_object(e))
				return usage("--entry must be a JSON object");
			json_array_append_new(a->entries, e);
		} else
			return usage("unknown option");
	}
	if (bad)
		return EXIT_USAGE;
	if (!a->url || !a->username || !a->method)
		return usage("--url, --username and METHOD are required");
	return 0;
}

/* The payload: the method's fields and the integration's credentials. */
static json_t *payload_of(const args_t *a)
{
	json_t *p = NULL;
	if (!strcmp(a->method, "uploadPictures")) {
		json_error_t je;
		p = a->meta ? json_loads(a->meta, 0, &je) : json_object();
		if (!json_is_object(p)) {
			fprintf(stderr, "pruvan-call: --meta is not a JSON "
					"object\n");
			json_decref(p);
			return NULL;
		}
	} else {
		p = json_object();
	}
	char sha[41] = "";
	if (a->password)
		sha1_hex(a->password, sha);
	json_object_set_new(p, "username", json_string(a->username));
	json_object_set_new(p, "password", json_string(sha));
	json_object_set_new(p, "token", json_string(a->token ? a->token : ""));
	if (!strcmp(a->method, "validate"))
		json_object_set_new(p, "pushkey",
				    json_string(a->pushkey ? a->pushkey : ""));
	else if (!strcmp(a->method, "getWorkOrders"))
		json_object_set_new(
		    p, "timestamp",
		    a->timestamp ? json_integer(strtoll(a->timestamp, NULL, 10))
				 : json_null());
	else if (!strcmp(a->method, "status"))
		json_object_set(p, "workOrders", a->entries);
	return p;
}

/* Would Pruvan read this answer as success? */
static int success(long status, const char *method, const char *body)
{
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	int ok = status == 200 && json_is_object(j);
	if (ok && !strcmp(method, "validate"))
		ok = json_is_true(json_object_get(j, "validated"));
	else if (ok && !strcmp(method, "getWorkOrders"))
		ok = json_is_array(json_object_get(j, "workOrders"));
	else if (ok)
		ok = json_is_true(json_object_get(j, "status"));
	json_decref(j);
	return ok;
}

int main(int argc, char **argv)
{
	args_t a = {0};
	int rc = parse(argc, argv, &a);
	if (rc)
		return rc;
	const char *known[] = {"validate", "getWorkOrders", "status",
			       "uploadPictures"};
	int found = 0;
	for (int i = 0; i < 4; i++)
		found |= !strcmp(a.method, known[i]);
	if (!found)
		return usage("METHOD is validate, getWorkOrders, status or "
			     "uploadPictures");
	bool upload = !strcmp(a.method, "uploadPictures");
	if (upload && !a.file)
		return usage("uploadPictures needs --file");
	json_t *p = payload_of(&a);
	if (!p)
		return EXIT_USAGE;
	char *text = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	json_decref(a.entries);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *c = curl_easy_init();
	char url[2048];
	snprintf(url, sizeof(url), "%s/%s.%s", a.url, a.method, a.ext);
	body_t b = {0};
	curl_mime *mime = NULL;
	char *form = NULL;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	if (upload) {
		mime = curl_mime_init(c);
		curl_mimepart *part = curl_mime_addpart(mime);
		curl_mime_name(part, "payload");
		curl_mime_data(part, text, CURL_ZERO_TERMINATED);
		part = curl_mime_addpart(mime);
		curl_mime_name(part, "file");
		if (curl_mime_filedata(part, a.file) != CURLE_OK) {
			fprintf(stderr, "pruvan-call: cannot read %s\n",
				a.file);
			return EXIT_USAGE;
		}
		curl_mime_type(part,
			       a.content_type ? a.content_type : "image/jpeg");
		curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	} else {
		char *esc = curl_easy_escape(c, text, 0);
		size_t n = strlen(esc) + 16;
		form = malloc(n);
		snprintf(form, n, "payload=%s", esc);
		curl_free(esc);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	}
	long status = 0;
	CURLcode cr = curl_easy_perform(c);
	if (cr == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		fprintf(stderr, "pruvan-call: %s: %s\n", url,
			curl_easy_strerror(cr));
	if (b.data)
		printf("%s\n", b.data);
	int ok = success(status, a.method, b.data);
	if (!ok && cr == CURLE_OK)
		fprintf(stderr, "pruvan-call: %s answered HTTP %ld\n", a.method,
			status);
	free(b.data);
	free(form);
	free(text);
	curl_mime_free(mime);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	return ok ? 0 : 1;
}
