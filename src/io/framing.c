/* framing.c: Schema Registry framing (the contract is framing.h). */
#include "framing.h"

bool pb_sr_framed(const char *value, size_t len, uint32_t *schema_id)
{
	if (!value || len <= PB_SR_PREFIX_LEN || value[0] != 0)
		return false;
	const unsigned char *u = (const unsigned char *)value;
	*schema_id = (uint32_t)u[1] << 24 | (uint32_t)u[2] << 16 |
		     (uint32_t)u[3] << 8 | (uint32_t)u[4];
	return true;
}
