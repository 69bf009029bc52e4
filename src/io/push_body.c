/*
 * push_body.c: the urlencoded push body (see push_body.h).
 *
 * One table lookup per byte in each of two passes (length, then write),
 * so the body is allocated once at its exact size: a batch of 50 orders is
 * tens of kilobytes and the pusher writes one per request.
 */
#include "push_body.h"

#include <string.h>

/* Bytes each byte takes in the form: 1 for the unreserved characters of
 * RFC 3986 (A-Z a-z 0-9 - . _ ~), which stay as they are, else 3 (%XX). */
static const unsigned char enc_len[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 00 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 10 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 3, /* 20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, /* 30 */
    3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 1, /* 50 */
    3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 1, 3, /* 70 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 80 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 90 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* A0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* B0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* C0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* D0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* E0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* F0 */
};

/* Each byte's text in the form, padded to 4 bytes so that it is copied
 * whole without a branch (enc_len says how much of it counts). */
static const char enc_text[256][4] = {
    "%00", "%01", "%02", "%03", "%04", "%05", "%06", "%07", "%08", "%09", "%0A",
    "%0B", "%0C", "%0D", "%0E", "%0F", "%10", "%11", "%12", "%13", "%14", "%15",
    "%16", "%17", "%18", "%19", "%1A", "%1B", "%1C", "%1D", "%1E", "%1F", "%20",
    "%21", "%22", "%23", "%24", "%25", "%26", "%27", "%28", "%29", "%2A", "%2B",
    "%2C", "-",	  ".",	 "%2F", "0",   "1",   "2",   "3",   "4",   "5",	  "6",
    "7",   "8",	  "9",	 "%3A", "%3B", "%3C", "%3D", "%3E", "%3F", "%40", "A",
    "B",   "C",	  "D",	 "E",	"F",   "G",   "H",   "I",   "J",   "K",	  "L",
    "M",   "N",	  "O",	 "P",	"Q",   "R",   "S",   "T",   "U",   "V",	  "W",
    "X",   "Y",	  "Z",	 "%5B", "%5C", "%5D", "%5E", "_",   "%60", "a",	  "b",
    "c",   "d",	  "e",	 "f",	"g",   "h",   "i",   "j",   "k",   "l",	  "m",
    "n",   "o",	  "p",	 "q",	"r",   "s",   "t",   "u",   "v",   "w",	  "x",
    "y",   "z",	  "%7B", "%7C", "%7D", "~",   "%7F", "%80", "%81", "%82", "%83",
    "%84", "%85", "%86", "%87", "%88", "%89", "%8A", "%8B", "%8C", "%8D", "%8E",
    "%8F", "%90", "%91", "%92", "%93", "%94", "%95", "%96", "%97", "%98", "%99",
    "%9A", "%9B", "%9C", "%9D", "%9E", "%9F", "%A0", "%A1", "%A2", "%A3", "%A4",
    "%A5", "%A6", "%A7", "%A8", "%A9", "%AA", "%AB", "%AC", "%AD", "%AE", "%AF",
    "%B0", "%B1", "%B2", "%B3", "%B4", "%B5", "%B6", "%B7", "%B8", "%B9", "%BA",
    "%BB", "%BC", "%BD", "%BE", "%BF", "%C0", "%C1", "%C2", "%C3", "%C4", "%C5",
    "%C6", "%C7", "%C8", "%C9", "%CA", "%CB", "%CC", "%CD", "%CE", "%CF", "%D0",
    "%D1", "%D2", "%D3", "%D4", "%D5", "%D6", "%D7", "%D8", "%D9", "%DA", "%DB",
    "%DC", "%DD", "%DE", "%DF", "%E0", "%E1", "%E2", "%E3", "%E4", "%E5", "%E6",
    "%E7", "%E8", "%E9", "%EA", "%EB", "%EC", "%ED", "%EE", "%EF", "%F0", "%F1",
    "%F2", "%F3", "%F4", "%F5", "%F6", "%F7", "%F8", "%F9", "%FA", "%FB", "%FC",
    "%FD", "%FE", "%FF",
};

size_t pb_push_form_len(const char *json, size_t len)
{
	size_t n = sizeof(PB_PUSH_FORM_FIELD "=") - 1;
	for (size_t i = 0; i < len; i++)
		n += enc_len[(unsigned char)json[i]];
	return n;
}

/* Up to the last 3 bytes of json, each byte's 4-byte text is copied and
 * the output advances by its length: the copy runs at most 3 bytes past
 * that length, into room the 3 bytes still to come are sure to take (each
 * takes 1 or 3). The last 3 are written exactly. */
size_t pb_push_form_write(const char *json, size_t len, char *out)
{
	static const char field[] = PB_PUSH_FORM_FIELD "=";
	size_t o = sizeof(field) - 1, i = 0;
	memcpy(out, field, o);
	for (; i + 3 < len; i++) {
		unsigned char c = (unsigned char)json[i];
		memcpy(out + o, enc_text[c], 4);
		o += enc_len[c];
	}
	for (; i < len; i++) {
		unsigned char c = (unsigned char)json[i];
		memcpy(out + o, enc_text[c], enc_len[c]);
		o += enc_len[c];
	}
	out[o] = '\0';
	return o;
}
