/*
 * util.c: see util.h.
 */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int64_t pb_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pb_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pb_ms_to_rfc3339(int64_t ms, char *buf, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	int frac = (int)(ms % 1000);
	if (frac < 0) {
		frac += 1000;
		secs -= 1;
	}
	/* the second's text is kept per thread: outcome records and log
	 * lines come many to a second, and gmtime_r + strftime were a
	 * percent of the loop's CPU */
	static _Thread_local bool base_set;
	static _Thread_local time_t base_secs;
	static _Thread_local char base[32];
	if (!base_set || secs != base_secs) {
		struct tm tm;
		gmtime_r(&secs, &tm);
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
		base_secs = secs;
		base_set = true;
	}
	char text[40];
	size_t n = strlen(base);
	memcpy(text, base, n);
	text[n++] = '.';
	text[n++] = (char)('0' + frac / 100);
	text[n++] = (char)('0' + frac / 10 % 10);
	text[n++] = (char)('0' + frac % 10);
	text[n++] = 'Z';
	text[n] = '\0';
	pb_strlcpy(buf, text, size);
}

void pb_now_rfc3339(char *buf, size_t size)
{
	pb_ms_to_rfc3339(pb_wall_ms(), buf, size);
}

void pb_redact_url(const char *url, char *buf, size_t size)
{
	if (!buf || size == 0)
		return;
	if (!url) {
		pb_strlcpy(buf, "(none)", size);
		return;
	}
	/* scheme://[userinfo@]host[:port]/path?query — keep scheme, host, path
	 */
	const char *scheme_end = strstr(url, "://");
	const char *host = scheme_end ? scheme_end + 3 : url;
	const char *at = NULL;
	for (const char *p = host; *p && *p != '/' && *p != '?'; p++)
		if (*p == '@')
			at = p;
	const char *q = strpbrk(host, "?#");
	size_t prefix = (size_t)(host - url);
	const char *rest = at ? at + 1 : host;
	size_t rest_len = q ? (size_t)(q - rest) : strlen(rest);
	snprintf(buf, size, "%.*s%s%.*s%s", (int)prefix, url,
		 at ? "<redacted>@" : "", (int)rest_len, rest,
		 q ? "?<redacted>" : "");
}

const char *pb_url_authority(const char *url)
{
	if (strncasecmp(url, "https://", 8) == 0)
		return url + 8;
	if (strncasecmp(url, "http://", 7) == 0)
		return url + 7;
	return NULL;
}

/* An http(s) URL's origin: *https, the host [h, h + *hn) and the port. */
static bool url_origin(const char *u, bool *https, const char **h, size_t *hn,
		       long *port)
{
	if (!(*h = pb_url_authority(u)))
		return false;
	*https = *h - u == 8;
	size_t an = strcspn(*h, "/?#");
	if (memchr(*h, '@', an))
		return false;
	const char *colon = memchr(*h, ':', an);
	*hn = colon ? (size_t)(colon - *h) : an;
	*port = *https ? 443 : 80;
	if (colon) {
		char *end;
		*port = strtol(colon + 1, &end, 10);
		if (end != *h + an || end == colon + 1)
			return false;
	}
	return *hn > 0;
}

bool pb_url_same_origin(const char *url, const char *base)
{
	bool s1, s2;
	const char *h1, *h2;
	size_t n1, n2;
	long p1, p2;
	return url && base && url_origin(url, &s1, &h1, &n1, &p1) &&
	       url_origin(base, &s2, &h2, &n2, &p2) && s1 == s2 && p1 == p2 &&
	       n1 == n2 && strncasecmp(h1, h2, n1) == 0;
}

char *pb_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

size_t pb_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);
	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

/* s as an optional '-' and 1 to 18 digits, nothing else: such a text
 * cannot overflow, and it is what Redis replies hold (strtoll's locale
 * and sign handling were 1% of the worker's instructions). False: read
 * it the general way. */
static bool parse_plain_i64(const char *s, int64_t *out)
{
	bool neg = *s == '-';
	const char *p = s + neg;
	int64_t v = 0;
	size_t n = 0;
	for (; p[n] >= '0' && p[n] <= '9'; n++) {
		if (n == 18)
			return false;
		v = v * 10 + (p[n] - '0');
	}
	if (n == 0 || p[n] != '\0')
		return false;
	*out = neg ? -v : v;
	return true;
}

bool pb_parse_i64(const char *s, int64_t *out)
{
	if (!s || !*s)
		return false;
	if (parse_plain_i64(s, out))
		return true;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = (int64_t)v;
	return true;
}

size_t pb_utf8_seq(const unsigned char *s, size_t n)
{
	if (n == 0)
		return 0;
	unsigned c = s[0];
	size_t k;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		k = 1, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		k = 2, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		k = 3, cp = c & 0x07;
	else
		return 0;
	if (k >= n)
		return 0;
	for (size_t j = 1; j <= k; j++) {
		if ((s[j] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[j] & 0x3F);
	}
	if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return k + 1;
}

void pb_format_text(char *buf, size_t size, const char *fmt, va_list ap)
{
	if (size == 0)
		return;
	vsnprintf(buf, size, fmt, ap);
	size_t n = strlen(buf), o = 0;
	for (size_t i = 0; i < n;) {
		size_t k = pb_utf8_seq((const unsigned char *)buf + i, n - i);
		if (k == 0) {
			i++; /* a stray byte: dropped */
			continue;
		}
		memmove(buf + o, buf + i, k);
		o += k;
		i += k;
	}
	buf[o] = '\0';
}
