/* produce.c: producer error classes and record size bounds (produce.h). */
#include "produce.h"

#include <openssl/evp.h>
#include <string.h>

pb_produce_class_t pb_produce_classify(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		return PB_PRODUCE_OK;
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
		return PB_PRODUCE_FULL;
	case RD_KAFKA_RESP_ERR__FATAL:
		return PB_PRODUCE_FATAL;
	/* the record, or what the topic or cluster allows of us */
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
	case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_INVALID_MSG:
	case RD_KAFKA_RESP_ERR_INVALID_RECORD:
	case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
	case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
	case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
	case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR__INVALID_ARG:
	case RD_KAFKA_RESP_ERR__BAD_MSG:
		return PB_PRODUCE_PERMANENT;
	default:
		/* timeouts, transport, leader changes, not enough replicas,
		 * an idempotence sequence to recover, out of memory */
		return PB_PRODUCE_RETRIABLE;
	}
}

const char *pb_produce_class_name(pb_produce_class_t c)
{
	switch (c) {
	case PB_PRODUCE_OK:
		return "ok";
	case PB_PRODUCE_FULL:
		return "full";
	case PB_PRODUCE_RETRIABLE:
		return "retriable";
	case PB_PRODUCE_PERMANENT:
		return "permanent";
	case PB_PRODUCE_FATAL:
		return "fatal";
	}
	return "unknown";
}

int pb_produce_backoff_ms(int tries)
{
	int ms = 100;
	for (int i = 0; i < tries && ms < PB_PRODUCE_BACKOFF_MAX_MS; i++)
		ms *= 2;
	return ms < PB_PRODUCE_BACKOFF_MAX_MS ? ms : PB_PRODUCE_BACKOFF_MAX_MS;
}

size_t pb_produce_record_max(int64_t message_max_bytes)
{
	/* librdkafka refuses a message.max.bytes below 1000 */
	if (message_max_bytes < 2 * PB_PRODUCE_FRAMING)
		return message_max_bytes > 0 ? (size_t)message_max_bytes / 2
					     : 0;
	return (size_t)message_max_bytes - PB_PRODUCE_FRAMING;
}

void pb_jt_truncated(pb_jtext_t *b, const char *text, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	static const char digits[] = "0123456789abcdef";
	if (!EVP_Digest(text ? text : "", text ? n : 0, md, &mdlen,
			EVP_sha256(), NULL))
		mdlen = 0;
	for (unsigned int i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * mdlen] = '\0';
	pb_jt_lit(b, "{\"truncated\":true,\"bytes\":");
	pb_jt_i64(b, (long long)n);
	pb_jt_lit(b, ",\"sha256\":");
	pb_jt_str(b, hex);
	pb_jt_lit(b, "}");
}

size_t pb_produce_header_size(const char *name, size_t value_len)
{
	return strlen(name) + value_len + 10;
}
