/*
 * relay_mpend.c: where a multipart body ends (see relay_mpend.h): a
 * streaming search for the close delimiter (Knuth-Morris-Pratt, so that a
 * partial match such as the first CR of CRLF CRLF "--" is never lost).
 */
#include "relay_mpend.h"

#include <string.h>
#include <strings.h>

/* The boundary parameter's value: [*b, *b + *n). */
static bool boundary_of(const char *ct, const char **b, size_t *n)
{
	const char *p = ct;
	for (; *p; p++)
		if (strncasecmp(p, "boundary=", 9) == 0)
			break;
	if (!*p)
		return false;
	p += 9;
	if (*p == '"') {
		const char *q = strchr(++p, '"');
		if (!q)
			return false;
		*n = (size_t)(q - p);
	} else {
		*n = strcspn(p, "; \t");
	}
	*b = p;
	return *n > 0 && *n <= PB_MPEND_MAX_BOUNDARY;
}

static void prefix_table(pb_mpend_t *m)
{
	m->fail[0] = 0;
	for (size_t i = 1, k = 0; i < m->len; i++) {
		while (k && m->delim[i] != m->delim[k])
			k = m->fail[k - 1];
		if (m->delim[i] == m->delim[k])
			k++;
		m->fail[i] = (unsigned char)k;
	}
}

bool pb_mpend_init(pb_mpend_t *m, const char *content_type)
{
	memset(m, 0, sizeof(*m));
	const char *b;
	size_t n;
	if (!content_type || !boundary_of(content_type, &b, &n))
		return false;
	memcpy(m->delim, "\r\n--", 4);
	memcpy(m->delim + 4, b, n);
	memcpy(m->delim + 4 + n, "--", 2);
	m->len = n + 6;
	prefix_table(m);
	return true;
}

size_t pb_mpend_take(pb_mpend_t *m, const char *chunk, size_t n)
{
	if (m->ended)
		return 0;
	if (!m->len)
		return n;
	for (size_t i = 0; i < n; i++) {
		while (m->matched && chunk[i] != m->delim[m->matched])
			m->matched = m->fail[m->matched - 1];
		if (chunk[i] == m->delim[m->matched])
			m->matched++;
		if (m->matched == m->len) {
			m->ended = true;
			return i + 1;
		}
	}
	return n;
}
