/*
 * cli.h: the pruvan-bridge command line, parsed without side effects.
 *
 *   pruvan-bridge [--log-level LEVEL] COMMAND [options] [arguments]
 *   pruvan-bridge --help | --version | help [COMMAND]
 *
 * Each command has its own options (cli.c's tables); an option of another
 * command, an unknown command or option, a missing or malformed value and
 * a missing or extra argument are usage errors whose message says what
 * was wrong. `--help`/`-h` after a command prints that command's help.
 * Parsing never prints, exits or reads the configuration: main decides
 * what to print and the exit code (0 ok, 1 runtime failure, 2 usage,
 * 3 invalid configuration).
 */
#ifndef PB_CLI_H
#define PB_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

#define PB_EXIT_OK	0
#define PB_EXIT_RUNTIME 1
#define PB_EXIT_USAGE	2
#define PB_EXIT_CONFIG	3

typedef enum {
	PB_CMD_NONE = 0,
	PB_CMD_RUN,
	PB_CMD_CHECK_CONFIG,
	PB_CMD_AUTO_ADMIN,
	PB_CMD_REPLAY,
	PB_CMD_WATCH,
	PB_CMD_EXPLAIN,
	PB_CMD_VERSION,
} pb_cmd_t;

typedef enum {
	PB_CLI_RUN = 0, /* run the command */
	PB_CLI_HELP,	/* print pb_cli_help(cmd) on stdout, exit 0 */
	PB_CLI_VERSION, /* print the version, exit 0 */
	PB_CLI_USAGE,	/* print the error and a hint on stderr, exit 2 */
} pb_cli_status_t;

/* Everything the command line says; strings borrow argv. */
typedef struct pb_cli {
	pb_cmd_t cmd;
	const char *config; /* -c FILE; NULL = the default */
	pb_log_level_t log_level;
	bool exit_on_eof;  /* run */
	bool no_env;	   /* check-config */
	bool dry_run;	   /* replay */
	int32_t partition; /* replay, -1 = all */
	int64_t from, to;  /* replay, -1 = unbounded */
	const char *reason;
	bool once;	     /* watch */
	bool json;	     /* explain */
	bool with_state;     /* explain */
	const char *input;   /* explain: FILE, "-" or NULL for stdin */
	const char *account; /* auto-admin */
	bool on;	     /* auto-admin */
} pb_cli_t;

/*
 * Parse argv (argv[0] is the program). Always fills *out (defaults first);
 * on PB_CLI_USAGE err says what was wrong, for people, without a newline.
 */
pb_cli_status_t pb_cli_parse(int argc, char *const *argv, pb_cli_t *out,
			     char *err, size_t err_size);

/* The command's name ("check-config"), or NULL for PB_CMD_NONE. */
const char *pb_cli_cmd_name(pb_cmd_t cmd);

/* Help for a command (its synopsis, options and examples), or the
 * overview for PB_CMD_NONE. */
void pb_cli_help(FILE *f, pb_cmd_t cmd);

#endif
