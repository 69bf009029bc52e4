/* The command line: each command's options, usage errors that say what
 * was wrong, help and version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"

static pb_cli_t c;
static char err[256];

/* Parse a NULL-terminated list of arguments (argv[0] added). */
static pb_cli_status_t parse(const char *first, ...)
{
	char *argv[32] = {"pruvan-bridge"};
	int argc = 1;
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a && argc < 31;
	     a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	return pb_cli_parse(argc, argv, &c, err, sizeof(err));
}

static void run_with_options(void **state)
{
	(void)state;
	assert_int_equal(parse("run", "-c", "x.json", "--exit-on-eof", NULL),
			 PB_CLI_RUN);
	assert_int_equal(c.cmd, PB_CMD_RUN);
	assert_string_equal(c.config, "x.json");
	assert_true(c.exit_on_eof);
	/* the configuration before the command, as older scripts wrote */
	assert_int_equal(
	    parse("--config=y.json", "--log-level", "debug", "run", NULL),
	    PB_CLI_RUN);
	assert_string_equal(c.config, "y.json");
	assert_int_equal(c.log_level, PB_LOG_DEBUG);
	assert_int_equal(parse("run", "-cz.json", NULL), PB_CLI_RUN);
	assert_string_equal(c.config, "z.json");
}

static void replay_values(void **state)
{
	(void)state;
	assert_int_equal(parse("replay", "--partition", "3", "--from=10",
			       "--to", "20", "--reason", "http_4xx",
			       "--dry-run", NULL),
			 PB_CLI_RUN);
	assert_int_equal(c.partition, 3);
	assert_int_equal(c.from, 10);
	assert_int_equal(c.to, 20);
	assert_string_equal(c.reason, "http_4xx");
	assert_true(c.dry_run);
	assert_int_equal(parse("replay", NULL), PB_CLI_RUN);
	assert_int_equal(c.partition, -1);
	assert_int_equal(c.from, -1);
	assert_int_equal(parse("replay", "--partition", "x", NULL),
			 PB_CLI_USAGE);
	assert_non_null(
	    strstr(err, "--partition: expected a non-negative integer"));
	assert_int_equal(parse("replay", "--from", "-4", NULL), PB_CLI_USAGE);
	assert_int_equal(parse("replay", "--to", NULL), PB_CLI_USAGE);
	assert_non_null(strstr(err, "--to needs a value"));
	/* what would select nothing and look like an empty DLQ is refused */
	assert_int_equal(parse("replay", "--from", "30", "--to", "20", NULL),
			 PB_CLI_USAGE);
	assert_non_null(strstr(err, "--from 30 is after --to 20"));
	assert_int_equal(parse("replay", "--from", "20", "--to", "20", NULL),
			 PB_CLI_RUN);
	assert_int_equal(parse("replay", "--reason", "retries_exhaused", NULL),
			 PB_CLI_USAGE);
	assert_non_null(
	    strstr(err, "--reason: unknown reason \"retries_exhaused\""));
	assert_int_equal(parse("replay", "--reason", "", NULL), PB_CLI_USAGE);
	assert_int_equal(parse("replay", "--reason", "invalid_json", NULL),
			 PB_CLI_RUN);
}

static void option_of_another_command_is_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("replay", "--once", NULL), PB_CLI_USAGE);
	assert_string_equal(err,
			    "replay does not take --once (an option of watch)");
	assert_int_equal(parse("run", "--dry-run", NULL), PB_CLI_USAGE);
	assert_non_null(strstr(err, "an option of replay"));
	assert_int_equal(parse("check-config", "--json", NULL), PB_CLI_USAGE);
	assert_non_null(strstr(err, "an option of explain"));
	assert_int_equal(parse("watch", "--bogus", NULL), PB_CLI_USAGE);
	assert_string_equal(err, "watch: unknown option --bogus");
	assert_int_equal(parse("run", "--exit-on-eof=yes", NULL), PB_CLI_USAGE);
	assert_string_equal(err, "--exit-on-eof takes no value");
}

static void arguments(void **state)
{
	(void)state;
	assert_int_equal(parse("auto-admin", "acme", "off", NULL), PB_CLI_RUN);
	assert_string_equal(c.account, "acme");
	assert_false(c.on);
	assert_int_equal(parse("auto-admin", "acme", "maybe", NULL),
			 PB_CLI_USAGE);
	assert_non_null(strstr(err, "on or off"));
	assert_int_equal(parse("auto-admin", "acme", NULL), PB_CLI_USAGE);
	assert_non_null(strstr(err, "missing argument"));
	assert_int_equal(parse("run", "extra", NULL), PB_CLI_USAGE);
	assert_string_equal(err, "run: unexpected argument \"extra\"");
	assert_int_equal(parse("explain", "--json", "-", NULL), PB_CLI_RUN);
	assert_string_equal(c.input, "-");
	assert_true(c.json);
	assert_int_equal(
	    parse("explain", "--with-state", "--", "-odd.jsonl", NULL),
	    PB_CLI_RUN);
	assert_string_equal(c.input, "-odd.jsonl");
	assert_true(c.with_state);
	assert_int_equal(parse("explain", "a", "b", NULL), PB_CLI_USAGE);
	assert_int_equal(parse("check-config", "--no-env", NULL), PB_CLI_RUN);
	assert_true(c.no_env);
}

static void commands_help_version(void **state)
{
	(void)state;
	assert_int_equal(parse(NULL), PB_CLI_USAGE);
	assert_string_equal(err, "no command given");
	assert_int_equal(parse("runn", NULL), PB_CLI_USAGE);
	assert_string_equal(err, "unknown command \"runn\"");
	assert_int_equal(parse("--version", NULL), PB_CLI_VERSION);
	assert_int_equal(parse("version", NULL), PB_CLI_RUN);
	assert_int_equal(c.cmd, PB_CMD_VERSION);
	assert_int_equal(parse("version", "-c", "x", NULL), PB_CLI_USAGE);
	/* every command takes --log-level (README), version too */
	assert_int_equal(parse("version", "--log-level", "warn", NULL),
			 PB_CLI_RUN);
	assert_int_equal(c.cmd, PB_CMD_VERSION);
	assert_int_equal(parse("--help", NULL), PB_CLI_HELP);
	assert_int_equal(c.cmd, PB_CMD_NONE);
	assert_int_equal(parse("replay", "-h", NULL), PB_CLI_HELP);
	assert_int_equal(c.cmd, PB_CMD_REPLAY);
	assert_int_equal(parse("help", "watch", NULL), PB_CLI_HELP);
	assert_int_equal(c.cmd, PB_CMD_WATCH);
	assert_int_equal(parse("help", "nope", NULL), PB_CLI_USAGE);
	assert_int_equal(parse("--log-level", "loud", "run", NULL),
			 PB_CLI_USAGE);
	assert_non_null(strstr(err, "unknown level \"loud\""));
}

/* Each command's help lists its own options and examples, not others'. */
static void help_is_per_command(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	pb_cli_help(f, PB_CMD_REPLAY);
	fclose(f);
	assert_non_null(strstr(buf, "usage: pruvan-bridge replay"));
	assert_non_null(strstr(buf, "--partition N"));
	assert_non_null(strstr(buf, "examples:"));
	assert_null(strstr(buf, "--once"));
	assert_null(strstr(buf, "--exit-on-eof"));
	free(buf);
	f = open_memstream(&buf, &len);
	pb_cli_help(f, PB_CMD_NONE);
	fclose(f);
	assert_non_null(strstr(buf, "explain"));
	assert_non_null(strstr(buf, "check-config"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(run_with_options),
	    cmocka_unit_test(replay_values),
	    cmocka_unit_test(option_of_another_command_is_refused),
	    cmocka_unit_test(arguments),
	    cmocka_unit_test(commands_help_version),
	    cmocka_unit_test(help_is_per_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
