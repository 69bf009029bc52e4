/*
 * main.c: the pruvan-bridge command line.
 *
 *   pruvan-bridge run [-c FILE] [--exit-on-eof]
 *   pruvan-bridge check-config [-c FILE] [--no-env]
 *   pruvan-bridge auto-admin [-c FILE] ACCOUNT on|off
 *   pruvan-bridge replay [-c FILE] [--partition N] [--from OFFSET]
 *                        [--to OFFSET] [--reason REASON] [--dry-run]
 *   pruvan-bridge watch [-c FILE] [--once]
 *   pruvan-bridge explain [-c FILE] [--json] [--with-state] [FILE|-]
 *   pruvan-bridge version | --version | help [COMMAND] | COMMAND --help
 * Every command also takes --log-level debug|info|warn|error (default
 * info). FILE defaults to $PRUVAN_BRIDGE_CONFIG, else
 * /etc/pruvan-bridge/config.json. The options and help texts live in
 * cli.c; this file only runs the commands.
 *
 * Exit codes: 0 success; 1 runtime failure; 2 usage error; 3 invalid
 * configuration. Only main decides exit codes and installs signal
 * handlers; the handler only sets a flag.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "config.h"
#include "explain.h"
#include "kafka_conf.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "relay.h"
#include "pipeline.h"
#include "procstat.h"
#include "replay.h"
#include "state.h"
#include "state_repair.h"
#include "util.h"
#include "watch.h"

#define EXIT_RUNTIME PB_EXIT_RUNTIME
#define EXIT_USAGE   PB_EXIT_USAGE
#define EXIT_CONFIG  PB_EXIT_CONFIG

#ifndef PB_VERSION
#define PB_VERSION "0.1.0"
#endif

static volatile sig_atomic_t stop_flag = 0;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static const char *default_config(void)
{
	const char *e = getenv("PRUVAN_BRIDGE_CONFIG");
	return e && *e ? e : "/etc/pruvan-bridge/config.json";
}

/*
 * The file failed its own checks (often only a secret that is not there):
 * name the "kafka" properties librdkafka refuses as well, so that one run
 * lists every mistake (contract 9). They are checked on the file's "kafka"
 * section alone, read without its secrets; nothing is added when that read
 * fails too (its mistakes are listed already).
 */
static void append_kafka_mistakes(const char *path, char *err, size_t size)
{
	char more[8192], ignored[256];
	pb_config_t *cfg = NULL;
	if (pb_config_load_kafka(path, &cfg, ignored, sizeof(ignored)))
		return;
	if (pb_kafka_conf_check(cfg, false, more, sizeof(more)) != PB_OK) {
		size_t n = strlen(err);
		snprintf(err + n, size - n, "%s%s",
			 n && err[n - 1] != '\n' ? "\n" : "", more);
	}
	pb_config_destroy(cfg);
}

/* Append "PATH: cannot read FILE: why" to err when file is set and not
 * readable; true when it was. */
static bool file_mistake(const char *path, const char *file, char *err,
			 size_t size)
{
	if (!file || access(file, R_OK) == 0)
		return false;
	size_t n = strlen(err);
	snprintf(err + n, size - n,
		 "%s%s: cannot read %s: %s: mount the file there or fix the "
		 "path",
		 n && err[n - 1] != '\n' ? "\n" : "", path, file,
		 strerror(errno));
	return true;
}

/*
 * The CA bundles, certificates and keys the configuration names, as files
 * the worker must read (contract 9: check-config names each mistake).
 * pruvan.caFile always: read only at each push, a missing one would fail
 * every push. The Redis TLS files only for check-config: run reads them as
 * it connects and exits 1 with the TLS reason.
 */
static bool files_mistaken(const pb_config_t *cfg, bool redis_too, char *err,
			   size_t size)
{
	bool bad =
	    file_mistake("$.pruvan.caFile", cfg->pruvan_ca_file, err, size);
	if (redis_too && cfg->redis_tls) {
		bad |= file_mistake("$.redis.tls.caFile",
				    cfg->redis_tls_ca_file, err, size);
		bad |= file_mistake("$.redis.tls.certFile",
				    cfg->redis_tls_cert_file, err, size);
		bad |= file_mistake("$.redis.tls.keyFile",
				    cfg->redis_tls_key_file, err, size);
	}
	return bad;
}

/* What a command loads the configuration for: a tool (no files checked,
 * the accounts' PushKeys and relay credentials not read, mistakes as
 * text), run (the files it needs checked, mistakes as JSON log
 * lines, as all its output on stderr) or check-config (every file, text). */
typedef enum { LOAD_FOR_TOOL, LOAD_FOR_RUN, LOAD_FOR_CHECK } load_for_t;

/* An invalid configuration's mistakes (err, one per line) on stderr: one
 * JSON log line each for run, else the text check-config prints. */
static void report_invalid(const char *path, char *err, load_for_t purpose)
{
	if (purpose != LOAD_FOR_RUN) {
		fprintf(stderr, "%s: invalid configuration:\n%s%s", path, err,
			err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
		return;
	}
	for (char *line = err, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		pb_log(PB_LOG_ERROR, "invalid configuration", "file", path,
		       "mistake", line, "what_to_do",
		       "fix it and start again (pruvan-bridge check-config -c "
		       "FILE names every mistake)",
		       NULL);
	}
}

/*
 * Load and check the configuration: the file's own checks, then every
 * "kafka" property applied to a librdkafka configuration of each client
 * kind, so a wrong property name or value is an invalid configuration
 * (exit 3) before anything starts. no_env: secrets are not resolved
 * (their references' form is still checked).
 */
static pb_config_t *load_config_opts(const char *path, bool no_env,
				     load_for_t purpose)
{
	static char err[16384];
	pb_config_t *cfg = NULL;
	/* the operator commands need no PushKey nor relay credential */
	pb_err_t e = no_env
			 ? pb_config_load_no_env(path, &cfg, err, sizeof(err))
		     : purpose == LOAD_FOR_TOOL
			 ? pb_config_load_tool(path, &cfg, err, sizeof(err))
			 : pb_config_load(path, &cfg, err, sizeof(err));
	if (e == PB_OK) {
		err[0] = '\0'; /* the mistakes below are appended */
		bool bad = pb_kafka_conf_check(cfg, !no_env, err,
					       sizeof(err)) != PB_OK;
		/* the files are not there when checking without the
		 * environment (CI) either */
		if (!no_env && purpose != LOAD_FOR_TOOL)
			bad |= files_mistaken(cfg, purpose == LOAD_FOR_CHECK,
					      err, sizeof(err));
		if (bad) {
			pb_config_destroy(cfg);
			cfg = NULL;
			e = PB_ERR_CONFIG;
		}
	} else if (e == PB_ERR_CONFIG) {
		append_kafka_mistakes(path, err, sizeof(err));
	}
	if (e != PB_OK) {
		report_invalid(path, err, purpose);
		return NULL;
	}
	return cfg;
}

static pb_config_t *load_config(const char *path)
{
	return load_config_opts(path, false, LOAD_FOR_TOOL);
}

static int cmd_check_config(const char *path, bool no_env)
{
	pb_config_t *cfg = load_config_opts(path, no_env, LOAD_FOR_CHECK);
	if (!cfg)
		return EXIT_CONFIG;
	char *desc = pb_config_describe(cfg);
	printf("%s: valid%s\n%s\n", path,
	       no_env ? " (secrets not resolved: --no-env)" : "",
	       desc ? desc : "");
	free(desc);
	pb_config_destroy(cfg);
	return 0;
}

/* Log an HTTP endpoint's start: where it listens, or why it could not
 * and what to do. False when it did not start. */
static bool endpoint_started(const char *name, const char *setting,
			     const char *listen, pb_err_t e, const char *err,
			     int port)
{
	char msg[64], todo[64];
	if (e != PB_OK) {
		snprintf(msg, sizeof(msg), "cannot start the %s endpoint",
			 name);
		snprintf(todo, sizeof(todo), "free the port or change %s",
			 setting);
		pb_log(PB_LOG_ERROR, msg, "listen", listen, "error", err,
		       "what_to_do", todo, NULL);
		return false;
	}
	char p[16];
	snprintf(msg, sizeof(msg), "%s endpoint listening", name);
	snprintf(p, sizeof(p), "%d", port);
	pb_log(PB_LOG_INFO, msg, "listen", listen, "port", p, NULL);
	return true;
}

static int cmd_run(const char *path, bool exit_on_eof)
{
	pb_config_t *cfg = load_config_opts(path, false, LOAD_FOR_RUN);
	if (!cfg)
		return EXIT_CONFIG;
	int rc = EXIT_RUNTIME;
	char err[1024];
	pb_pipeline_t *pl = NULL;
	pb_ops_t *ops = NULL;
	pb_relay_t *relay = NULL;
	pb_repair_t *repair = NULL;
	pb_metrics_t *m = pb_metrics_new();
	pb_procstat_t ps = {0};
	if (!m || pb_metrics_declare_standard(m) != PB_OK ||
	    pb_procstat_attach(m, &ps) != PB_OK) {
		pb_log(PB_LOG_ERROR, "cannot set up metrics", NULL);
		goto out;
	}
	char lbl[64];
	pb_metrics_labels(lbl, sizeof(lbl), "version", PB_VERSION, NULL);
	pb_metrics_set(m, PB_M_BUILD_INFO, lbl, 1);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	pb_pipeline_opts_t opts = {.exit_on_eof = exit_on_eof,
				   .stop_flag = &stop_flag};
	if (pb_pipeline_new(cfg, m, &opts, &pl, err, sizeof(err)) != PB_OK) {
		pb_log(PB_LOG_ERROR, "cannot start the worker", "error", err,
		       "what_to_do", "check the kafka and redis settings",
		       NULL);
		goto out;
	}
	if (cfg->http_listen && cfg->http_listen[0]) {
		pb_err_t e =
		    pb_ops_start(cfg->http_listen, m, pb_pipeline_alive,
				 pb_pipeline_ready, pl, &ops, err, sizeof(err));
		if (!endpoint_started("operations", "http.listen",
				      cfg->http_listen, e, err,
				      pb_ops_port(ops)))
			goto out;
	}
	if (cfg->relay_listen) {
		pb_err_t e = pb_relay_start(cfg, m, &relay, err, sizeof(err));
		if (!endpoint_started("relay", "relay.listen",
				      cfg->relay_listen, e, err,
				      pb_relay_port(relay)))
			goto out;
	}
	/* the worker is up: order hashes an earlier build left expiring are
	 * made to stay, once, on a thread of its own (state_repair.h) */
	if (pb_repair_start(cfg, m, &repair, err, sizeof(err)) != PB_OK)
		pb_log(PB_LOG_ERROR, "cannot start the order-expiry repair",
		       "error", err, "what_to_do",
		       "check the redis settings; the next start tries again",
		       NULL);
	if (pb_pipeline_run(pl, err, sizeof(err)) != PB_OK) {
		pb_log(PB_LOG_ERROR, "worker failed", "error", err, NULL);
		goto out;
	}
	rc = 0;
out:
	pb_repair_stop(repair);
	pb_relay_stop(relay);
	pb_ops_stop(ops);
	pb_pipeline_destroy(pl);
	pb_metrics_destroy(m);
	pb_config_destroy(cfg);
	return rc;
}

static int cmd_auto_admin(const char *path, const char *account, bool on)
{
	pb_config_t *cfg = load_config(path);
	if (!cfg)
		return EXIT_CONFIG;
	int rc = EXIT_RUNTIME;
	pb_state_t *st = NULL;
	char err[512];
	if (!pb_config_account(cfg, account)) {
		pb_log(PB_LOG_ERROR,
		       "auto-admin: the account is not configured", "account",
		       account, "file", path, "what_to_do",
		       "name an account of the file's accounts", NULL);
		rc = EXIT_USAGE;
		goto out;
	}
	if (pb_state_new_config(cfg, 2000, &st, err, sizeof(err)) ||
	    pb_state_set_auto_admin(st, account, on, err, sizeof(err))) {
		pb_log(PB_LOG_ERROR, "auto-admin failed", "error", err,
		       "what_to_do", "check the redis settings and try again",
		       NULL);
		goto out;
	}
	printf("Auto-Admin for %s is now %s; running workers apply it within a "
	       "second.\n",
	       account, on ? "on" : "off");
	rc = 0;
out:
	pb_state_destroy(st);
	pb_config_destroy(cfg);
	return rc;
}

static int cmd_replay(const pb_cli_t *c, const char *path)
{
	pb_config_t *cfg = load_config(path);
	if (!cfg)
		return EXIT_CONFIG;
	pb_replay_opts_t ro = {.partition = c->partition,
			       .from = c->from,
			       .to = c->to,
			       .reason = c->reason,
			       .dry_run = c->dry_run};
	long n = 0;
	char err[512];
	int rc = 0;
	pb_err_t e = pb_replay_run(cfg, &ro, &n, err, sizeof(err));
	if (e != PB_OK) {
		pb_log(PB_LOG_ERROR, "replay failed", "error", err, NULL);
		/* an argument the DLQ cannot satisfy is a usage error */
		rc = e == PB_ERR_INVALID ? EXIT_USAGE : EXIT_RUNTIME;
	} else {
		char count[32];
		snprintf(count, sizeof(count), "%ld", n);
		pb_log(PB_LOG_INFO,
		       c->dry_run ? "replay: records that would be replayed "
				    "(dry run)"
				  : "replay: records replayed",
		       "records", count, NULL);
	}
	pb_config_destroy(cfg);
	return rc;
}

static int cmd_watch(const char *path, bool once)
{
	pb_config_t *cfg = load_config(path);
	if (!cfg)
		return EXIT_CONFIG;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	int rc =
	    pb_watch_run(cfg, once, &stop_flag) == PB_OK ? 0 : EXIT_RUNTIME;
	pb_config_destroy(cfg);
	return rc;
}

/* explain reads no secret unless it reads stored state (Redis). */
static int cmd_explain(const pb_cli_t *c, const char *path)
{
	pb_config_t *cfg =
	    load_config_opts(path, !c->with_state, LOAD_FOR_TOOL);
	if (!cfg)
		return EXIT_CONFIG;
	pb_explain_opts_t eo = {.json = c->json, .with_state = c->with_state};
	char err[512];
	int rc = pb_explain_run(cfg, &eo, c->input, stdout, err, sizeof(err));
	if (rc != 0)
		pb_log(PB_LOG_ERROR, "explain failed", "error", err, NULL);
	pb_config_destroy(cfg);
	return rc;
}

static void print_version(void)
{
	printf("pruvan-bridge %s (librdkafka %s, %s)\n", PB_VERSION,
	       rd_kafka_version_str(), curl_version());
}

int main(int argc, char **argv)
{
	pb_cli_t c;
	char err[256];
	switch (pb_cli_parse(argc, argv, &c, err, sizeof(err))) {
	case PB_CLI_USAGE: {
		const char *name = pb_cli_cmd_name(c.cmd);
		fprintf(stderr,
			"pruvan-bridge: %s\nTry `pruvan-bridge %s%s--help`.\n",
			err, name ? name : "", name ? " " : "");
		return EXIT_USAGE;
	}
	case PB_CLI_HELP:
		pb_cli_help(stdout, c.cmd);
		return 0;
	case PB_CLI_VERSION:
		print_version();
		return 0;
	case PB_CLI_RUN:
		break;
	}
	pb_log_set_level(c.log_level);
	const char *cfg_path = c.config ? c.config : default_config();
	if (c.cmd == PB_CMD_VERSION) {
		print_version();
		return 0;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = EXIT_USAGE;
	switch (c.cmd) {
	case PB_CMD_RUN:
		rc = cmd_run(cfg_path, c.exit_on_eof);
		break;
	case PB_CMD_CHECK_CONFIG:
		rc = cmd_check_config(cfg_path, c.no_env);
		break;
	case PB_CMD_AUTO_ADMIN:
		rc = cmd_auto_admin(cfg_path, c.account, c.on);
		break;
	case PB_CMD_REPLAY:
		rc = cmd_replay(&c, cfg_path);
		break;
	case PB_CMD_WATCH:
		rc = cmd_watch(cfg_path, c.once);
		break;
	case PB_CMD_EXPLAIN:
		rc = cmd_explain(&c, cfg_path);
		break;
	case PB_CMD_VERSION:
	case PB_CMD_NONE:
		break;
	}
	curl_global_cleanup();
	return rc;
}
