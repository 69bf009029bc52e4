/*
 * cli.c: the command line's tables and parser (the contract is cli.h).
 *
 * One table of options and one of commands; each command lists the
 * options it takes as a bit mask, so the parser, the error for an option
 * of another command and each command's --help come from the same rows
 * and cannot disagree. The parser is hand-written rather than getopt's
 * so that it keeps no global state (unit tests call it many times) and
 * can say which command an out-of-place option belongs to.
 */
#include "cli.h"

#include <string.h>

#include "outcome.h"
#include "util.h"

typedef enum {
	O_CONFIG = 0,
	O_LOG_LEVEL,
	O_HELP,
	O_EXIT_ON_EOF,
	O_NO_ENV,
	O_DRY_RUN,
	O_PARTITION,
	O_FROM,
	O_TO,
	O_REASON,
	O_ONCE,
	O_JSON,
	O_WITH_STATE,
	O_COUNT,
} opt_id_t;

#define BIT(o) (1u << (o))
#define COMMON (BIT(O_CONFIG) | BIT(O_LOG_LEVEL) | BIT(O_HELP))

typedef struct opt {
	const char *name; /* without the leading "--" */
	char short_name;  /* 0 = none */
	const char *arg;  /* the value's name, NULL = a flag */
	const char *help;
} opt_t;

static const opt_t opts[O_COUNT] = {
    [O_CONFIG] = {"config", 'c', "FILE",
		  "configuration file (default $PRUVAN_BRIDGE_CONFIG, "
		  "else /etc/pruvan-bridge/config.json)"},
    [O_LOG_LEVEL] = {"log-level", 0, "LEVEL",
		     "debug, info (default), warn or error"},
    [O_HELP] = {"help", 'h', NULL, "print this help and exit"},
    [O_EXIT_ON_EOF] = {"exit-on-eof", 0, NULL,
		       "exit 0 once every assigned partition is consumed "
		       "to its end and every outcome is committed"},
    [O_NO_ENV] = {"no-env", 0, NULL,
		  "do not resolve env:/file: secrets (CI, GitOps); each "
		  "reference's form is still checked"},
    [O_DRY_RUN] = {"dry-run", 'n', NULL,
		   "list what would be replayed, produce nothing"},
    [O_PARTITION] = {"partition", 'p', "N", "only this DLQ partition"},
    [O_FROM] = {"from", 0, "OFFSET", "first DLQ offset (inclusive)"},
    [O_TO] = {"to", 0, "OFFSET", "last DLQ offset (inclusive)"},
    [O_REASON] = {"reason", 0, "REASON",
		  "only records whose x-error-reason is REASON"},
    [O_ONCE] = {"once", 0, NULL,
		"read the topic to its end, print one summary, exit"},
    [O_JSON] = {"json", 0, NULL,
		"one JSON object per event instead of a table"},
    [O_WITH_STATE] = {"with-state", 0, NULL,
		      "read each order's stored state from Redis (read "
		      "only) instead of treating it as new"},
};

typedef struct cmd {
	const char *name;
	pb_cmd_t cmd;
	unsigned mask;
	int min_args, max_args;
	const char *args;     /* synopsis of the arguments */
	const char *summary;  /* one line, for the overview */
	const char *examples; /* lines, each "  $ ..." */
} cmd_t;

static const cmd_t cmds[] = {
    {"run", PB_CMD_RUN, COMMON | BIT(O_EXIT_ON_EOF), 0, 0, "",
     "consume order events, push them to Pruvan, publish outcomes",
     "  pruvan-bridge run -c /etc/pruvan-bridge/config.json\n"
     "  pruvan-bridge run -c config.json --exit-on-eof   # a backfill\n"},
    {"check-config", PB_CMD_CHECK_CONFIG, COMMON | BIT(O_NO_ENV), 0, 0, "",
     "validate the configuration offline (exit 3 when invalid)",
     "  pruvan-bridge check-config -c config.json\n"
     "  pruvan-bridge check-config --no-env -c "
     "config/examples/sasl-scram.json\n"},
    {"auto-admin", PB_CMD_AUTO_ADMIN, COMMON, 2, 2, " ACCOUNT on|off",
     "switch an account's Auto-Admin at run time (no restart)",
     "  pruvan-bridge auto-admin -c config.json acme-internal off\n"},
    {"replay", PB_CMD_REPLAY,
     COMMON | BIT(O_DRY_RUN) | BIT(O_PARTITION) | BIT(O_FROM) | BIT(O_TO) |
	 BIT(O_REASON),
     0, 0, "", "copy DLQ records back to the orders topic, with their headers",
     "  pruvan-bridge replay -c config.json --reason retries_exhausted "
     "--dry-run\n"
     "  pruvan-bridge replay -c config.json --partition 3 --from 120 --to "
     "180\n"},
    {"watch", PB_CMD_WATCH, COMMON | BIT(O_ONCE), 0, 0, "",
     "live view of the results topic",
     "  pruvan-bridge watch -c config.json\n"
     "  pruvan-bridge watch -c config.json --once\n"},
    {"explain", PB_CMD_EXPLAIN, COMMON | BIT(O_JSON) | BIT(O_WITH_STATE), 0, 1,
     " [FILE|-]",
     "what the rules would do with events (JSON lines); sends nothing",
     "  pruvan-bridge explain -c config.json events.jsonl\n"
     "  kcat -C -b broker -t pruvan.orders -e | pruvan-bridge explain --json "
     "-\n"
     "  pruvan-bridge explain -c config.json --with-state events.jsonl\n"},
    {"version", PB_CMD_VERSION, BIT(O_HELP) | BIT(O_LOG_LEVEL), 0, 0, "",
     "print the version and the libraries'", "  pruvan-bridge version\n"},
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const cmd_t *cmd_find(const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static const cmd_t *cmd_of(pb_cmd_t c)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (cmds[i].cmd == c)
			return &cmds[i];
	return NULL;
}

const char *pb_cli_cmd_name(pb_cmd_t c)
{
	const cmd_t *k = cmd_of(c);
	return k ? k->name : NULL;
}

/* The option an argument names ("--name", "--name=v", "-x", "-xVALUE"),
 * or -1. *inline_val points at a value given in the same argument. */
static int opt_match(const char *a, const char **inline_val)
{
	*inline_val = NULL;
	if (a[0] == '-' && a[1] == '-') {
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t n = eq ? (size_t)(eq - name) : strlen(name);
		for (int i = 0; i < O_COUNT; i++)
			if (strlen(opts[i].name) == n &&
			    strncmp(opts[i].name, name, n) == 0) {
				*inline_val = eq ? eq + 1 : NULL;
				return i;
			}
		return -1;
	}
	for (int i = 0; i < O_COUNT; i++)
		if (opts[i].short_name && a[1] == opts[i].short_name) {
			*inline_val = a[2] ? a + 2 : NULL;
			return i;
		}
	return -1;
}

/* "--partition is an option of replay" for an option that belongs
 * elsewhere; "" when no command takes it. */
static void owners(int o, char *buf, size_t size)
{
	buf[0] = '\0';
	size_t used = 0;
	for (size_t i = 0; i < NCMDS; i++) {
		if (!(cmds[i].mask & BIT(o)))
			continue;
		int n = snprintf(buf + used, size - used, "%s%s",
				 used ? ", " : "", cmds[i].name);
		if (n < 0 || (size_t)n >= size - used)
			return;
		used += (size_t)n;
	}
}

static bool parse_nonneg(const char *s, int64_t *out)
{
	return pb_parse_i64(s, out) && *out >= 0;
}

/* Store an option's value. False (err filled) when it is malformed. */
static bool opt_apply(pb_cli_t *c, int o, const char *v, char *err, size_t size)
{
	int64_t n;
	switch ((opt_id_t)o) {
	case O_CONFIG:
		if (!*v) {
			snprintf(err, size, "--config: the file name is empty");
			return false;
		}
		c->config = v;
		return true;
	case O_LOG_LEVEL:
		if (!pb_log_level_parse(v, &c->log_level)) {
			snprintf(err, size,
				 "--log-level: unknown level \"%.40s\" "
				 "(debug, info, warn, error)",
				 v);
			return false;
		}
		return true;
	case O_PARTITION:
	case O_FROM:
	case O_TO:
		if (!parse_nonneg(v, &n) ||
		    (o == O_PARTITION && n > INT32_MAX)) {
			snprintf(err, size,
				 "--%s: expected a non-negative integer, got "
				 "\"%.40s\"",
				 opts[o].name, v);
			return false;
		}
		if (o == O_PARTITION)
			c->partition = (int32_t)n;
		else if (o == O_FROM)
			c->from = n;
		else
			c->to = n;
		return true;
	case O_REASON: {
		/* a misspelt reason would select nothing and look like an
		 * empty DLQ: only the contract's reason names */
		pb_reason_t r;
		if (!pb_reason_parse(v, strlen(v), &r) || r == PB_REASON_NONE ||
		    strcmp(pb_reason_name(r), v) != 0) {
			snprintf(err, size,
				 "--reason: unknown reason \"%.40s\" (use a "
				 "reason of the outcome records, e.g. "
				 "retries_exhausted or http_4xx)",
				 v);
			return false;
		}
		c->reason = v;
		return true;
	}
	case O_EXIT_ON_EOF:
		c->exit_on_eof = true;
		return true;
	case O_NO_ENV:
		c->no_env = true;
		return true;
	case O_DRY_RUN:
		c->dry_run = true;
		return true;
	case O_ONCE:
		c->once = true;
		return true;
	case O_JSON:
		c->json = true;
		return true;
	case O_WITH_STATE:
		c->with_state = true;
		return true;
	case O_HELP:
	case O_COUNT:
		break;
	}
	return true;
}

typedef struct scan {
	int argc;
	char *const *argv;
	int i; /* the next argument */
} scan_t;

/*
 * One option at s->argv[s->i] (already known to start with '-'), checked
 * against mask. Returns PB_CLI_RUN to carry on, PB_CLI_HELP, or
 * PB_CLI_USAGE with err filled.
 */
static pb_cli_status_t take_option(scan_t *s, const char *where, unsigned mask,
				   pb_cli_t *c, char *err, size_t size)
{
	const char *a = s->argv[s->i++], *v;
	int o = opt_match(a, &v);
	if (o < 0) {
		snprintf(err, size, "%s: unknown option %.60s", where, a);
		return PB_CLI_USAGE;
	}
	if (!(mask & BIT(o))) {
		char who[128];
		owners(o, who, sizeof(who));
		snprintf(err, size, "%s does not take --%s%s%s%s", where,
			 opts[o].name, who[0] ? " (an option of " : "", who,
			 who[0] ? ")" : "");
		return PB_CLI_USAGE;
	}
	if (o == O_HELP)
		return PB_CLI_HELP;
	if (!opts[o].arg) {
		if (v) {
			snprintf(err, size, "--%s takes no value",
				 opts[o].name);
			return PB_CLI_USAGE;
		}
		return opt_apply(c, o, "", err, size) ? PB_CLI_RUN
						      : PB_CLI_USAGE;
	}
	if (!v) {
		if (s->i >= s->argc) {
			snprintf(err, size, "--%s needs a value (%s)",
				 opts[o].name, opts[o].arg);
			return PB_CLI_USAGE;
		}
		v = s->argv[s->i++];
	}
	return opt_apply(c, o, v, err, size) ? PB_CLI_RUN : PB_CLI_USAGE;
}

static pb_cli_status_t positional(const cmd_t *k, pb_cli_t *c, int nth,
				  const char *a, char *err, size_t size)
{
	if (nth >= k->max_args) {
		snprintf(err, size, "%s: unexpected argument \"%.60s\"",
			 k->name, a);
		return PB_CLI_USAGE;
	}
	if (k->cmd == PB_CMD_EXPLAIN) {
		c->input = a;
	} else if (k->cmd == PB_CMD_AUTO_ADMIN && nth == 0) {
		c->account = a;
	} else if (k->cmd == PB_CMD_AUTO_ADMIN) {
		if (strcmp(a, "on") != 0 && strcmp(a, "off") != 0) {
			snprintf(err, size,
				 "auto-admin: the value must be on or off, "
				 "not \"%.40s\"",
				 a);
			return PB_CLI_USAGE;
		}
		c->on = strcmp(a, "on") == 0;
	}
	return PB_CLI_RUN;
}

/* The command's own arguments, from s->i on. */
static pb_cli_status_t parse_command(scan_t *s, const cmd_t *k, pb_cli_t *c,
				     char *err, size_t size)
{
	int nargs = 0;
	bool opts_done = false;
	while (s->i < s->argc) {
		const char *a = s->argv[s->i];
		if (!opts_done && strcmp(a, "--") == 0) {
			opts_done = true;
			s->i++;
			continue;
		}
		if (!opts_done && a[0] == '-' && a[1]) {
			pb_cli_status_t st =
			    take_option(s, k->name, k->mask, c, err, size);
			if (st != PB_CLI_RUN)
				return st;
			continue;
		}
		pb_cli_status_t st = positional(k, c, nargs++, a, err, size);
		if (st != PB_CLI_RUN)
			return st;
		s->i++;
	}
	if (nargs < k->min_args) {
		snprintf(err, size,
			 "%s: missing argument (usage: pruvan-bridge "
			 "%s [options]%s)",
			 k->name, k->name, k->args);
		return PB_CLI_USAGE;
	}
	return PB_CLI_RUN;
}

pb_cli_status_t pb_cli_parse(int argc, char *const *argv, pb_cli_t *c,
			     char *err, size_t size)
{
	memset(c, 0, sizeof(*c));
	c->log_level = PB_LOG_INFO;
	c->partition = -1;
	c->from = c->to = -1;
	err[0] = '\0';
	scan_t s = {argc, argv, 1};
	/* global options before the command */
	while (s.i < argc && argv[s.i][0] == '-' && argv[s.i][1]) {
		if (strcmp(argv[s.i], "--version") == 0 ||
		    strcmp(argv[s.i], "-V") == 0) {
			c->cmd = PB_CMD_VERSION;
			return PB_CLI_VERSION;
		}
		pb_cli_status_t st =
		    take_option(&s, "pruvan-bridge", COMMON, c, err, size);
		if (st != PB_CLI_RUN)
			return st;
	}
	if (s.i >= argc) {
		snprintf(err, size, "no command given");
		return PB_CLI_USAGE;
	}
	const char *name = argv[s.i++];
	if (strcmp(name, "help") == 0) {
		if (s.i < argc) {
			const cmd_t *k = cmd_find(argv[s.i]);
			if (!k) {
				snprintf(err, size,
					 "help: unknown command "
					 "\"%.40s\"",
					 argv[s.i]);
				return PB_CLI_USAGE;
			}
			c->cmd = k->cmd;
		}
		return PB_CLI_HELP;
	}
	const cmd_t *k = cmd_find(name);
	if (!k) {
		snprintf(err, size, "unknown command \"%.40s\"", name);
		return PB_CLI_USAGE;
	}
	c->cmd = k->cmd;
	pb_cli_status_t st = parse_command(&s, k, c, err, size);
	if (st == PB_CLI_RUN && c->from >= 0 && c->to >= 0 && c->from > c->to) {
		/* an empty range would replay nothing and report success */
		snprintf(err, size,
			 "--from %lld is after --to %lld: give the first "
			 "offset, then the last (both inclusive)",
			 (long long)c->from, (long long)c->to);
		return PB_CLI_USAGE;
	}
	return st;
}

static void help_options(FILE *f, unsigned mask)
{
	fputs("\noptions:\n", f);
	for (int o = 0; o < O_COUNT; o++) {
		if (!(mask & BIT(o)))
			continue;
		char left[48];
		snprintf(left, sizeof(left), "%s%c%s--%s%s%s",
			 opts[o].short_name ? "-" : "",
			 opts[o].short_name ? opts[o].short_name : ' ',
			 opts[o].short_name ? ", " : "  ", opts[o].name,
			 opts[o].arg ? " " : "",
			 opts[o].arg ? opts[o].arg : "");
		fprintf(f, "  %-26s %s\n", left + (opts[o].short_name ? 0 : 1),
			opts[o].help);
	}
}

void pb_cli_help(FILE *f, pb_cmd_t cmd)
{
	const cmd_t *k = cmd_of(cmd);
	if (!k) {
		fputs("usage: pruvan-bridge [--log-level LEVEL] COMMAND "
		      "[options]\n"
		      "       pruvan-bridge --version | --help | help COMMAND\n"
		      "\ncommands:\n",
		      f);
		for (size_t i = 0; i < NCMDS; i++)
			fprintf(f, "  %-14s %s\n", cmds[i].name,
				cmds[i].summary);
		fputs("\n`pruvan-bridge COMMAND --help` lists a command's "
		      "options and examples.\n"
		      "Exit codes: 0 ok, 1 runtime failure, 2 usage, "
		      "3 invalid configuration.\n",
		      f);
		return;
	}
	fprintf(f, "usage: pruvan-bridge %s [options]%s\n\n%s.\n", k->name,
		k->args, k->summary);
	help_options(f, k->mask);
	fprintf(f, "\nexamples:\n%s", k->examples);
	fputs("\nExit codes: 0 ok, 1 runtime failure, 2 usage, "
	      "3 invalid configuration.\n",
	      f);
}
