/*
 * state_layout.c: the key layout's upgrade window (see state_layout.h).
 */
#include "state_layout.h"

#include <stddef.h>

#include "util.h"

bool pb_slayout_parse(const char *value, int64_t *layout_at)
{
	int64_t v = 0;
	if (!value || !pb_parse_i64(value, &v))
		return false;
	*layout_at = v > 0 ? v : 0;
	return true;
}

int64_t pb_slayout_first(bool redis_empty, int64_t now_s)
{
	return redis_empty ? 0 : now_s;
}

bool pb_slayout_read_legacy(int64_t layout_at, int64_t window_s, int64_t ttl_s,
			    int64_t now_s)
{
	return layout_at > 0 && now_s < layout_at + window_s + ttl_s;
}

bool pb_slayout_write_legacy(int64_t layout_at, int64_t window_s, int64_t now_s)
{
	return layout_at > 0 && now_s < layout_at + window_s;
}
