/*
 * cli_cmd.c - the list, remove and delete command bodies shared by the
 * verb groups (see cli_cmd.h).
 */
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_http.h"
#include "cli_out.h"

#define LIST_PAGES_MAX 1000

/* The path of one page: the first (cursor "") or the one after cursor. */
static int
page_path(const struct cli_list_cmd *s, const char *cursor, char *path,
    size_t len)
{
	char prefix[256];
	int n;

	if (!s->paged)
		n = snprintf(path, len, "%s", s->path);
	else if (cursor[0] == '\0')
		n = snprintf(path, len, "%s?limit=1000", s->path);
	else {
		n = snprintf(prefix, sizeof(prefix), "%s?limit=1000&after=",
		    s->path);
		if (n < 0 || (size_t)n >= sizeof(prefix))
			return MOAT_ERR_TOOBIG;
		return cli_path(path, len, prefix, cursor, NULL);
	}
	return n < 0 || (size_t)n >= len ? MOAT_ERR_TOOBIG : 0;
}

int
cli_run_list(const struct cli_list_cmd *s, int argc, char **argv)
{
	struct cli_conn *c = NULL;
	struct cli_table *t = NULL;
	const char *pos[1];
	json_t *all = NULL, *out = NULL, *item;
	bool json = false;
	char path[512], next[256] = "", base[512];
	size_t npos, i;
	int r, status;
	struct cli_opt opts[1 + CLI_LIST_OPTS_MAX] = {
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};
	struct cli_list_cmd s2;

	if (s->ncols == 0 || s->ncols > CLI_COLS_MAX ||
	    s->nopts > CLI_LIST_OPTS_MAX)
		return CLI_FAILED;
	for (i = 0; i < s->nopts; i++)
		opts[1 + i] = s->opts[i];
	if ((r = cli_parse(s->prog, argc, argv, opts, 1 + s->nopts, pos, 0, 0,
	    &npos, s->usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (s->make_path != NULL) {
		if ((status = s->make_path(s->ctx, base, sizeof(base))) != 0)
			return status;
		s2 = *s;
		s2.path = base;
		s = &s2;
	}
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	if ((all = json_array()) == NULL) {
		status = CLI_FAILED;
		goto out;
	}
	for (int page = 0; page < LIST_PAGES_MAX; page++) {
		const char *nx;

		if (page_path(s, next, path, sizeof(path)) != 0)
			break;
		if ((status = cli_api(c, "GET", path, NULL, &out)) != 0)
			goto out;
		/* A missing or non-array member lists nothing. */
		json_array_extend(all, json_object_get(out, s->key));
		if (!s->paged)
			break;
		nx = json_string_value(json_object_get(out, "next"));
		if (nx == NULL || nx[0] == '\0' || strlen(nx) >= sizeof(next))
			break;
		snprintf(next, sizeof(next), "%s", nx);
		json_decref(out);
		out = NULL;
	}
	if (json) {
		cli_print_json(all);
		goto out;
	}
	status = CLI_FAILED;
	if ((t = cli_table_new(s->ncols, s->head)) == NULL)
		goto out;
	json_array_foreach(all, i, item) {
		char scratch[CLI_COLS_MAX][CLI_CELL_MAX];
		const char *cells[CLI_COLS_MAX] = { NULL };

		s->row(c, item, cells, scratch);
		if (cli_table_add(t, cells) != 0)
			goto out;
	}
	cli_table_print(t, stdout);
	status = CLI_OK;
out:
	cli_table_free(t);
	json_decref(all);
	json_decref(out);
	cli_conn_free(c);
	return status;
}

int
cli_run_remove(const struct cli_remove_cmd *s, int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1], *id = NULL, *name = NULL;
	json_t *out = NULL, *k;
	bool yes = false;
	char prefix[256], path[256], q[256];
	size_t npos, i;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--yes", "-y", CLI_OPT_FLAG, &yes },
	};

	if ((r = cli_parse(s->prog, argc, argv, opts, 1, pos, 1, 1, &npos,
	    s->usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	/* Accept the id or the name of one of the caller's items. */
	if ((status = cli_api(c, "GET", s->path, NULL, &out)) != 0)
		goto out;
	json_array_foreach(json_object_get(out, s->key), i, k) {
		const char *kid = json_string_value(json_object_get(k, "id"));
		const char *kn = json_string_value(json_object_get(k, "name"));

		if (kid != NULL && (strcmp(kid, pos[0]) == 0 ||
		    (kn != NULL && strcmp(kn, pos[0]) == 0))) {
			id = kid;
			name = kn;
			break;
		}
	}
	status = CLI_FAILED;
	if (id == NULL) {
		fprintf(stderr, "%s: you have no %s with id or name '%s'\n",
		    s->prog, s->noun, pos[0]);
		goto out;
	}
	s->question(c, id, name, q, sizeof(q));
	if ((status = cli_confirm_or_yes(s->prog, q, yes)) != 0)
		goto out;
	r = snprintf(prefix, sizeof(prefix), "%s/", s->path);
	if (r < 0 || (size_t)r >= sizeof(prefix) ||
	    cli_path(path, sizeof(path), prefix, id, NULL) != 0) {
		status = CLI_USAGE;
		goto out;
	}
	if ((status = cli_api(c, "DELETE", path, NULL, NULL)) != 0)
		goto out;
	printf("%s %s %s\n", s->done, s->noun, id);
out:
	json_decref(out);
	cli_conn_free(c);
	return status;
}

int
cli_run_delete(const char *prog, void (*usage)(FILE *f), const char *prefix,
    const char *noun, int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1];
	bool yes = false;
	char path[256], q[160];
	size_t npos;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--yes", "-y", CLI_OPT_FLAG, &yes },
	};

	if ((r = cli_parse(prog, argc, argv, opts, 1, pos, 1, 1, &npos,
	    usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_path(path, sizeof(path), prefix, pos[0], NULL) != 0)
		return CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	snprintf(q, sizeof(q), "Delete %s %s?", noun, pos[0]);
	if ((status = cli_confirm_or_yes(prog, q, yes)) != 0)
		goto out;
	if ((status = cli_api(c, "DELETE", path, NULL, NULL)) != 0)
		goto out;
	printf("Deleted %s %s\n", noun, pos[0]);
out:
	cli_conn_free(c);
	return status;
}
