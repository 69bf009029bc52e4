/*
 * err.c: names and classes of pb_err_t.
 */
#include "err.h"

#include <stdio.h>

const char *pb_err_name(pb_err_t err)
{
	switch (err) {
	case PB_OK:
		return "ok";
	case PB_ERR_NOMEM:
		return "nomem";
	case PB_ERR_INVALID:
		return "invalid";
	case PB_ERR_CONFIG:
		return "config";
	case PB_ERR_IO:
		return "io";
	case PB_ERR_REDIS:
		return "redis";
	case PB_ERR_KAFKA:
		return "kafka";
	case PB_ERR_HTTP:
		return "http";
	case PB_ERR_TIMEOUT:
		return "timeout";
	case PB_ERR_NOT_FOUND:
		return "not_found";
	case PB_ERR_STATE:
		return "state";
	}
	return "unknown";
}

bool pb_err_is_retriable(pb_err_t err)
{
	switch (err) {
	case PB_ERR_IO:
	case PB_ERR_REDIS:
	case PB_ERR_KAFKA:
	case PB_ERR_HTTP:
	case PB_ERR_TIMEOUT:
		return true;
	default:
		return false;
	}
}

pb_err_t pb_errf(char *errstr, size_t errstr_size, pb_err_t err,
		 const char *fmt, ...)
{
	if (errstr && errstr_size > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(errstr, errstr_size, fmt, ap);
		va_end(ap);
	}
	return err;
}
