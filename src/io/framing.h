/*
 * framing.h: Confluent Schema Registry's wire format on input records.
 *
 * A producer that serialises through a Schema Registry (JSON Schema
 * serde) writes a magic byte 0 and the schema id as 4 bytes, big endian,
 * before the JSON. The worker reads the JSON after that prefix and keeps
 * the schema id for the outcome record ("schemaId"); the DLQ copy keeps
 * the record's bytes as they came. JSON never starts with a NUL byte, so
 * no unframed record is mistaken for a framed one. Pure.
 */
#ifndef PB_FRAMING_H
#define PB_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PB_SR_PREFIX_LEN 5

/* True when value[0..len) is framed (magic byte 0, a schema id, and at
 * least one byte after them); *schema_id is then the id. */
bool pb_sr_framed(const char *value, size_t len, uint32_t *schema_id);

#endif
