/*
 * cli_args.c - option parsing for the moat verbs (see cli_args.h) and the
 * duration syntax of --expires-in and --since.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"

static const struct cli_opt *
find_opt(const struct cli_opt *opts, size_t n, const char *arg, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(opts[i].name) == len &&
		    strncmp(opts[i].name, arg, len) == 0)
			return &opts[i];
		if (opts[i].alias != NULL && strlen(opts[i].alias) == len &&
		    strncmp(opts[i].alias, arg, len) == 0)
			return &opts[i];
	}
	return NULL;
}

int
cli_parse(const char *cmd, int argc, char **argv,
    const struct cli_opt *opts, size_t n, const char **pos, size_t minpos,
    size_t maxpos, size_t *npos, void (*usage)(FILE *f))
{
	bool opts_done = false;
	size_t np = 0;

	*npos = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val = NULL;
		const struct cli_opt *o;
		size_t len;

		if (opts_done || a[0] != '-' || a[1] == '\0') {
			if (np >= maxpos) {
				fprintf(stderr, "%s: unexpected argument '%s' "
				    "(try %s --help)\n", cmd, a, cmd);
				return CLI_PARSE_ERR;
			}
			pos[np++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			opts_done = true;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return CLI_PARSE_HELP;
		}
		eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
		len = eq != NULL ? (size_t)(eq - a) : strlen(a);
		if ((o = find_opt(opts, n, a, len)) == NULL) {
			fprintf(stderr, "%s: unknown option '%.*s' (try %s "
			    "--help)\n", cmd, (int)len, a, cmd);
			return CLI_PARSE_ERR;
		}
		if (o->kind == CLI_OPT_FLAG) {
			if (eq != NULL) {
				fprintf(stderr, "%s: %s takes no value\n", cmd,
				    o->name);
				return CLI_PARSE_ERR;
			}
			*(bool *)o->dest = true;
			continue;
		}
		if (eq != NULL)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		if (val == NULL || (eq == NULL && val[0] == '-' &&
		    val[1] == '-' && val[2] != '\0')) {
			fprintf(stderr, "%s: %s needs a value\n", cmd, o->name);
			return CLI_PARSE_ERR;
		}
		if (o->kind == CLI_OPT_STR) {
			*(const char **)o->dest = val;
		} else {
			struct cli_list *l = o->dest;

			if (l->n >= CLI_LIST_MAX) {
				fprintf(stderr, "%s: %s given more than %d "
				    "times\n", cmd, o->name, CLI_LIST_MAX);
				return CLI_PARSE_ERR;
			}
			l->v[l->n++] = val;
		}
	}
	if (np < minpos) {
		fprintf(stderr, "%s: missing argument (try %s --help)\n", cmd,
		    cmd);
		return CLI_PARSE_ERR;
	}
	*npos = np;
	return CLI_PARSE_OK;
}

int
cli_parse_duration(const char *s, int64_t *out)
{
	const int64_t max = (int64_t)100 * 366 * 86400;
	long long v, mult = 1;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return MOAT_ERR_INVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v <= 0)
		return MOAT_ERR_INVAL;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	case 'w':
		mult = 7 * 86400;
		break;
	default:
		return MOAT_ERR_INVAL;
	}
	if (*end != '\0' && end[1] != '\0')
		return MOAT_ERR_INVAL;
	if (v > max / mult)
		return MOAT_ERR_INVAL;
	*out = (int64_t)v * mult;
	return 0;
}

int
cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return MOAT_ERR_INVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return MOAT_ERR_INVAL;
	*out = (uint64_t)v;
	return 0;
}

int
cli_dispatch(const char *group, int argc, char **argv,
    const struct cli_command *subs, size_t n, void (*usage)(FILE *f))
{
	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(subs[i].name, argv[1]) == 0)
			return subs[i].run(argc - 1, argv + 1);
	fprintf(stderr, "moat %s: unknown subcommand '%s' (try moat %s "
	    "--help)\n", group, argv[1], group);
	return CLI_USAGE;
}
