/*
 * main.c: the pruvan-bridge command line.
 *
 *   pruvan-bridge run [-c FILE] [--exit-on-eof]
 *   pruvan-bridge check-config [-c FILE]
 *   pruvan-bridge auto-admin [-c FILE] ACCOUNT on|off
 *   pruvan-bridge replay [-c FILE] [--partition N] [--from OFFSET]
 *                        [--to OFFSET] [--reason REASON] [--dry-run]
 *   pruvan-bridge watch [-c FILE] [--once]
 *   pruvan-bridge version
 * Global: --log-level debug|info|warn|error (default info).
 * FILE defaults to $PRUVAN_BRIDGE_CONFIG, else /etc/pruvan-bridge/config.json.
 *
 * Exit codes: 0 success; 1 runtime failure; 2 usage error; 3 invalid
 * configuration. Only main decides exit codes and installs signal
 * handlers; the handler only sets a flag.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "relay.h"
#include "pipeline.h"
#include "replay.h"
#include "state.h"
#include "util.h"
#include "watch.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define EXIT_CONFIG 3

#ifndef PB_VERSION
#define PB_VERSION "0.1.0"
#endif

static volatile sig_atomic_t stop_flag = 0;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fputs("usage: pruvan-bridge [--log-level LEVEL] COMMAND [options]\n"
	      "\n"
	      "commands:\n"
	      "  run [-c FILE] [--exit-on-eof]     consume, push, publish outcomes\n"
	      "  check-config [-c FILE]            validate the configuration offline\n"
	      "  auto-admin [-c FILE] ACCOUNT on|off\n"
	      "                                    switch an account's Auto-Admin at run time\n"
	      "  replay [-c FILE] [--partition N] [--from OFFSET] [--to OFFSET]\n"
	      "         [--reason REASON] [--dry-run]\n"
	      "                                    copy DLQ records back to the orders topic\n"
	      "  watch [-c FILE] [--once]          live view of the results topic\n"
	      "  version                           print the version\n"
	      "\n"
	      "FILE defaults to $PRUVAN_BRIDGE_CONFIG, else /etc/pruvan-bridge/config.json.\n"
	      "Exit codes: 0 ok, 1 runtime failure, 2 usage, 3 invalid configuration.\n",
	      f);
}

static const char *default_config(void)
{
	const char *e = getenv("PRUVAN_BRIDGE_CONFIG");
	return e && *e ? e : "/etc/pruvan-bridge/config.json";
}

static pb_config_t *load_config(const char *path)
{
	static char err[16384];
	pb_config_t *cfg = NULL;
	if (pb_config_load(path, &cfg, err, sizeof(err)) != PB_OK) {
		fprintf(stderr, "%s: invalid configuration:\n%s%s", path, err,
			err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
		return NULL;
	}
	return cfg;
}

static int cmd_check_config(const char *path)
{
	pb_config_t *cfg = load_config(path);
	if (!cfg)
		return EXIT_CONFIG;
	char *desc = pb_config_describe(cfg);
	printf("%s: valid\n%s\n", path, desc ? desc : "");
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
	pb_config_t *cfg = load_config(path);
	if (!cfg)
		return EXIT_CONFIG;
	int rc = EXIT_RUNTIME;
	char err[1024];
	pb_pipeline_t *pl = NULL;
	pb_ops_t *ops = NULL;
	pb_relay_t *relay = NULL;
	pb_metrics_t *m = pb_metrics_new();
	if (!m || pb_metrics_declare_standard(m) != PB_OK) {
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
		       "what_to_do", "check the kafka and redis settings", NULL);
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
	if (pb_pipeline_run(pl, err, sizeof(err)) != PB_OK) {
		pb_log(PB_LOG_ERROR, "worker failed", "error", err, NULL);
		goto out;
	}
	rc = 0;
out:
	pb_relay_stop(relay);
	pb_ops_stop(ops);
	pb_pipeline_destroy(pl);
	pb_metrics_destroy(m);
	pb_config_destroy(cfg);
	return rc;
}

static int cmd_auto_admin(const char *path, const char *account,
			  const char *value)
{
	bool on;
	if (strcmp(value, "on") == 0)
		on = true;
	else if (strcmp(value, "off") == 0)
		on = false;
	else {
		fprintf(stderr, "auto-admin: the value must be on or off, not \"%s\"\n", value);
		return EXIT_USAGE;
	}
	pb_config_t *cfg = load_config(path);
	if (!cfg)
		return EXIT_CONFIG;
	int rc = EXIT_RUNTIME;
	pb_state_t *st = NULL;
	char err[512];
	if (!pb_config_account(cfg, account)) {
		fprintf(stderr, "auto-admin: account \"%s\" is not in %s\n", account, path);
		rc = EXIT_USAGE;
		goto out;
	}
	if (pb_state_new_config(cfg, 2000, &st, err, sizeof(err)) ||
	    pb_state_set_auto_admin(st, account, on, err, sizeof(err))) {
		fprintf(stderr, "auto-admin: %s (check the redis settings)\n", err);
		goto out;
	}
	printf("Auto-Admin for %s is now %s; running workers apply it within a second.\n",
	       account, on ? "on" : "off");
	rc = 0;
out:
	pb_state_destroy(st);
	pb_config_destroy(cfg);
	return rc;
}

static bool parse_i64_arg(const char *name, const char *s, int64_t *out)
{
	if (pb_parse_i64(s, out) && *out >= 0)
		return true;
	fprintf(stderr, "%s: expected a non-negative integer, got \"%s\"\n", name, s);
	return false;
}

int main(int argc, char **argv)
{
	pb_log_level_t level = PB_LOG_INFO;
	const char *cfg_path = default_config();
	bool exit_on_eof = false, dry_run = false, once = false;
	pb_replay_opts_t ro = {.partition = -1, .from = -1, .to = -1};
	int64_t v;

	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"exit-on-eof", no_argument, NULL, 'e'},
		{"dry-run", no_argument, NULL, 'n'},
		{"partition", required_argument, NULL, 'p'},
		{"from", required_argument, NULL, 'f'},
		{"to", required_argument, NULL, 't'},
		{"reason", required_argument, NULL, 'r'},
		{"once", no_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg_path = optarg; break;
		case 'l':
			if (!pb_log_level_parse(optarg, &level)) {
				fprintf(stderr, "--log-level: unknown level \"%s\" (debug, info, warn, error)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'e': exit_on_eof = true; break;
		case 'n': dry_run = true; break;
		case 'o': once = true; break;
		case 'p':
			if (!parse_i64_arg("--partition", optarg, &v))
				return EXIT_USAGE;
			ro.partition = (int32_t)v;
			break;
		case 'f':
			if (!parse_i64_arg("--from", optarg, &ro.from))
				return EXIT_USAGE;
			break;
		case 't':
			if (!parse_i64_arg("--to", optarg, &ro.to))
				return EXIT_USAGE;
			break;
		case 'r': ro.reason = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	pb_log_set_level(level);
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[optind++];
	int rest = argc - optind;
	char **args = argv + optind;

	if (strcmp(cmd, "version") == 0) {
		printf("pruvan-bridge %s (librdkafka %s, %s)\n", PB_VERSION,
		       rd_kafka_version_str(), curl_version());
		return 0;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc;
	if (strcmp(cmd, "run") == 0 && rest == 0) {
		rc = cmd_run(cfg_path, exit_on_eof);
	} else if (strcmp(cmd, "check-config") == 0 && rest == 0) {
		rc = cmd_check_config(cfg_path);
	} else if (strcmp(cmd, "auto-admin") == 0 && rest == 2) {
		rc = cmd_auto_admin(cfg_path, args[0], args[1]);
	} else if (strcmp(cmd, "replay") == 0 && rest == 0) {
		pb_config_t *cfg = load_config(cfg_path);
		if (!cfg)
			return EXIT_CONFIG;
		ro.dry_run = dry_run;
		long n = 0;
		char err[512];
		if (pb_replay_run(cfg, &ro, &n, err, sizeof(err)) != PB_OK) {
			fprintf(stderr, "replay: %s\n", err);
			rc = EXIT_RUNTIME;
		} else {
			fprintf(stderr, "replay: %ld record%s %s\n", n,
				n == 1 ? "" : "s",
				dry_run ? "would be replayed (dry run)" : "replayed");
			rc = 0;
		}
		pb_config_destroy(cfg);
	} else if (strcmp(cmd, "watch") == 0 && rest == 0) {
		pb_config_t *cfg = load_config(cfg_path);
		if (!cfg)
			return EXIT_CONFIG;
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		rc = pb_watch_run(cfg, once, &stop_flag) == PB_OK ? 0 : EXIT_RUNTIME;
		pb_config_destroy(cfg);
	} else {
		usage(stderr);
		rc = EXIT_USAGE;
	}
	curl_global_cleanup();
	return rc;
}
