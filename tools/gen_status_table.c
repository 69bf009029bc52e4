/*
 * gen_status_table.c: compile spec/status-matrix.csv into a C table.
 *
 * Run at build time (cmake/modules/rules.cmake) so that the rules module
 * and Pruvan's status table cannot drift: editing the CSV rebuilds the
 * table. Usage: gen_status_table IN.csv OUT.c
 *
 * Invariants: the header row must be exactly
 * action,status,allowed,client_status_suggestion,notes; every row must have
 * five fields, a known action (create|update) and a known allowed value
 * (internal+external|internal|no|caution); any deviation fails the build
 * with the line number, rather than producing a table that silently
 * disagrees with the spec. Fields may be double-quoted ("" escapes a quote).
 * This tool must never write a partial output file: it writes to memory,
 * then to OUT in one go.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE   4096
#define MAX_FIELDS 8

/* Split one CSV line in place; returns the number of fields or -1. */
static int split_csv(char *line, char **fields, int max)
{
	int n = 0;
	char *r = line, *w = line;
	for (;;) {
		if (n == max)
			return -1;
		fields[n++] = w;
		if (*r == '"') {
			r++;
			for (;;) {
				if (*r == '\0')
					return -1; /* unterminated quote */
				if (*r == '"' && r[1] == '"') {
					*w++ = '"';
					r += 2;
				} else if (*r == '"') {
					r++;
					break;
				} else {
					*w++ = *r++;
				}
			}
			if (*r != ',' && *r != '\0')
				return -1;
		} else {
			while (*r != ',' && *r != '\0')
				*w++ = *r++;
		}
		if (*r == '\0') {
			*w = '\0';
			return n;
		}
		*w++ = '\0';
		r++;
	}
}

/* Emit s as a C string literal. */
static void put_cstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			continue; /* no control characters in the table */
		fputc(*s, f);
	}
	fputc('"', f);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s IN.csv OUT.c\n", argv[0]);
		return 2;
	}
	FILE *in = fopen(argv[1], "r");
	if (!in) {
		perror(argv[1]);
		return 1;
	}
	char *text = NULL;
	size_t text_len = 0;
	FILE *out = open_memstream(&text, &text_len);
	if (!out) {
		fclose(in);
		return 1;
	}
	fprintf(out,
		"/* Generated from %s by gen_status_table: do not edit. */\n"
		"#include \"rules_internal.h\"\n\n"
		"const pb_status_rule_t pb_status_table[] = {\n",
		argv[1]);
	char line[MAX_LINE];
	int lineno = 0, rows = 0, rc = 0;
	while (fgets(line, sizeof(line), in)) {
		lineno++;
		size_t l = strlen(line);
		if (l == sizeof(line) - 1 && line[l - 1] != '\n') {
			fprintf(stderr, "%s:%d: line too long\n", argv[1],
				lineno);
			rc = 1;
			break;
		}
		while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
			line[--l] = '\0';
		if (l == 0)
			continue;
		char *f[MAX_FIELDS];
		int n = split_csv(line, f, MAX_FIELDS);
		if (lineno == 1) {
			if (n != 5 || strcmp(f[0], "action") != 0 ||
			    strcmp(f[1], "status") != 0 ||
			    strcmp(f[2], "allowed") != 0 ||
			    strcmp(f[3], "client_status_suggestion") != 0 ||
			    strcmp(f[4], "notes") != 0) {
				fprintf(stderr, "%s:1: unexpected header\n",
					argv[1]);
				rc = 1;
				break;
			}
			continue;
		}
		if (n != 5) {
			fprintf(stderr, "%s:%d: expected 5 fields, got %d\n",
				argv[1], lineno, n);
			rc = 1;
			break;
		}
		const char *action, *allowed;
		if (!strcmp(f[0], "create"))
			action = "PB_ACTION_CREATE";
		else if (!strcmp(f[0], "update"))
			action = "PB_ACTION_UPDATE";
		else {
			fprintf(stderr, "%s:%d: unknown action \"%s\"\n",
				argv[1], lineno, f[0]);
			rc = 1;
			break;
		}
		if (!strcmp(f[2], "internal+external"))
			allowed = "PB_STATUS_ALLOW_BOTH";
		else if (!strcmp(f[2], "internal"))
			allowed = "PB_STATUS_ALLOW_INTERNAL";
		else if (!strcmp(f[2], "no"))
			allowed = "PB_STATUS_ALLOW_NO";
		else if (!strcmp(f[2], "caution"))
			allowed = "PB_STATUS_ALLOW_CAUTION";
		else {
			fprintf(stderr, "%s:%d: unknown allowed \"%s\"\n",
				argv[1], lineno, f[2]);
			rc = 1;
			break;
		}
		fprintf(out, "\t{%s, ", action);
		put_cstr(out, f[1]);
		fprintf(out, ", %s, ", allowed);
		put_cstr(out, f[3]);
		fputs(", ", out);
		put_cstr(out, f[4]);
		fputs("},\n", out);
		rows++;
	}
	fclose(in);
	fprintf(out, "};\n\nconst size_t pb_status_table_len = %d;\n", rows);
	fclose(out);
	if (rc == 0 && rows == 0) {
		fprintf(stderr, "%s: no rows\n", argv[1]);
		rc = 1;
	}
	if (rc == 0) {
		FILE *o = fopen(argv[2], "w");
		if (!o || fwrite(text, 1, text_len, o) != text_len) {
			perror(argv[2]);
			rc = 1;
		}
		if (o && fclose(o) != 0)
			rc = 1;
	}
	free(text);
	return rc;
}
