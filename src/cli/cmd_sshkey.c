/*
 * cmd_sshkey.c - "moat sshkey": the caller's SSH public keys, which the
 * SSH gateway uses to recognize them.
 *
 *   moat sshkey add [FILE] [--name N]     (default ~/.ssh/id_ed25519.pub)
 *   moat sshkey list [--json]
 *   moat sshkey remove ID|NAME [--yes]
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_http.h"
#include "cli_out.h"

#define KEY_FILE_MAX 16384

void
cmd_sshkey_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat sshkey add [FILE] [--name NAME]\n"
	    "       moat sshkey list [--json]\n"
	    "       moat sshkey remove ID|NAME [--yes]\n\n"
	    "add registers an OpenSSH public key (one authorized_keys line;\n"
	    "FILE defaults to ~/.ssh/id_ed25519.pub, - reads stdin). NAME\n"
	    "defaults to the key's comment. remove asks for confirmation on a\n"
	    "terminal; --yes skips it (and is required without a terminal).\n");
}

/* Reads the public key file into buf (first line, trimmed). */
static int
read_key(const char *file, char *buf, size_t size)
{
	FILE *f;
	size_t n;

	if (strcmp(file, "-") == 0)
		f = stdin;
	else if ((f = fopen(file, "re")) == NULL) {
		fprintf(stderr, "moat sshkey add: cannot open %s: %s\n", file,
		    strerror(errno));
		return CLI_FAILED;
	}
	n = fread(buf, 1, size - 1, f);
	if (f != stdin)
		fclose(f);
	buf[n] = '\0';
	if (n == size - 1) {
		fprintf(stderr, "moat sshkey add: %s is larger than %zu bytes: "
		    "not a public key\n", file, size - 2);
		return CLI_FAILED;
	}
	if (strstr(buf, "PRIVATE KEY") != NULL) {
		explicit_bzero(buf, size);
		fprintf(stderr, "moat sshkey add: %s is a private key; give the "
		    "public one (%s.pub)\n", file, file);
		return CLI_FAILED;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0') {
		fprintf(stderr, "moat sshkey add: %s holds no key\n", file);
		return CLI_FAILED;
	}
	return 0;
}

/* A default name from the key's comment (third field) or the host:
 * characters the API does not take in names become '-'. */
static void
default_name(const char *line, char *out, size_t size)
{
	const char *p = line;
	size_t n = 0;

	for (int field = 0; field < 2 && p != NULL; field++) {
		p = strchr(p, ' ');
		if (p != NULL)
			p += strspn(p, " ");
	}
	if (p == NULL || *p == '\0') {
		if (gethostname(out, size) != 0 || out[0] == '\0')
			snprintf(out, size, "key");
		out[size - 1] = '\0';
		p = out;
	}
	for (; *p != '\0' && n + 1 < size && n < 64; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		    c == '@' || c == '-' || c == ' '))
			c = '-';
		out[n++] = c;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	if (n == 0)
		snprintf(out, size, "key");
}

static int
sshkey_add(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1], *name = NULL, *file;
	char def[4096], line[KEY_FILE_MAX + 2], nm[80];
	json_t *body = NULL, *out = NULL;
	size_t npos;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--name", NULL, CLI_OPT_STR, &name },
	};

	if ((r = cli_parse("moat sshkey add", argc, argv, opts, 1, pos, 0, 1,
	    &npos, cmd_sshkey_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (npos == 1) {
		file = pos[0];
	} else {
		const char *home = getenv("HOME");

		if (home == NULL || home[0] == '\0') {
			fprintf(stderr, "moat sshkey add: HOME is not set: "
			    "give the key FILE\n");
			return CLI_USAGE;
		}
		snprintf(def, sizeof(def), "%s/.ssh/id_ed25519.pub", home);
		file = def;
	}
	if ((status = read_key(file, line, sizeof(line))) != 0)
		return status;
	if (name == NULL) {
		default_name(line, nm, sizeof(nm));
		name = nm;
	}
	if ((body = json_pack("{s:s,s:s}", "name", name, "public_key", line)) ==
	    NULL)
		return CLI_FAILED;
	if ((status = cli_conn_open(&c)) != 0)
		goto out;
	if ((status = cli_api(c, "POST", "/api/v1/ssh-keys", body, &out)) != 0)
		goto out;
	{
		char a[96], b[96], d[96];

		printf("Added key %s (%s %s, id %s)\n", cli_clean(cli_str(out,
		    "name"), a, sizeof(a)), cli_clean(cli_str(out, "type"), b,
		    sizeof(b)), cli_clean(cli_str(out, "fingerprint"), d,
		    sizeof(d)), cli_str(out, "id"));
	}
out:
	json_decref(body);
	json_decref(out);
	cli_conn_free(c);
	return status;
}

static int
sshkey_list(int argc, char **argv)
{
	static const char *const head[] = { "ID", "NAME", "TYPE",
	    "FINGERPRINT", "ADDED" };
	struct cli_conn *c = NULL;
	struct cli_table *t = NULL;
	const char *pos[1];
	json_t *out = NULL, *list, *k;
	bool json = false;
	size_t npos, i;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};

	if ((r = cli_parse("moat sshkey list", argc, argv, opts, 1, pos, 0, 0,
	    &npos, cmd_sshkey_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	if ((status = cli_api(c, "GET", "/api/v1/ssh-keys", NULL, &out)) != 0)
		goto out;
	list = json_object_get(out, "ssh_keys");
	if (json) {
		cli_print_json(json_is_array(list) ? list : json_array());
		goto out;
	}
	status = CLI_FAILED;
	if ((t = cli_table_new(5, head)) == NULL)
		goto out;
	json_array_foreach(list, i, k) {
		char cr[32];
		const char *row[5] = { cli_str(k, "id"), cli_str(k, "name"),
		    cli_str(k, "type"), cli_str(k, "fingerprint"), cli_time(
		    json_string_value(json_object_get(k, "created_at")), cr,
		    sizeof(cr)) };

		if (cli_table_add(t, row) != 0)
			goto out;
	}
	cli_table_print(t, stdout);
	status = CLI_OK;
out:
	cli_table_free(t);
	json_decref(out);
	cli_conn_free(c);
	return status;
}

static int
sshkey_remove(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1], *id = NULL, *name = NULL;
	json_t *out = NULL, *k;
	bool yes = false;
	char path[256], q[256];
	size_t npos, i;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--yes", "-y", CLI_OPT_FLAG, &yes },
	};

	if ((r = cli_parse("moat sshkey remove", argc, argv, opts, 1, pos, 1,
	    1, &npos, cmd_sshkey_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	if ((status = cli_api(c, "GET", "/api/v1/ssh-keys", NULL, &out)) != 0)
		goto out;
	json_array_foreach(json_object_get(out, "ssh_keys"), i, k) {
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
		fprintf(stderr, "moat sshkey remove: you have no SSH key with "
		    "id or name '%s'\n", pos[0]);
		goto out;
	}
	{
		char cn[96];

		snprintf(q, sizeof(q), "Remove SSH key %s (%s)?", cli_clean(
		    name, cn, sizeof(cn)), id);
	}
	if ((status = cli_confirm_or_yes("moat sshkey remove", q, yes)) != 0)
		goto out;
	if (cli_path(path, sizeof(path), "/api/v1/ssh-keys/", id, NULL) != 0) {
		status = CLI_USAGE;
		goto out;
	}
	if ((status = cli_api(c, "DELETE", path, NULL, NULL)) != 0)
		goto out;
	printf("Removed SSH key %s\n", id);
out:
	json_decref(out);
	cli_conn_free(c);
	return status;
}

static const struct cli_command subs[] = {
	{ "add", sshkey_add, NULL, NULL },
	{ "list", sshkey_list, NULL, NULL },
	{ "ls", sshkey_list, NULL, NULL },
	{ "remove", sshkey_remove, NULL, NULL },
	{ "rm", sshkey_remove, NULL, NULL },
};

int
cmd_sshkey(int argc, char **argv)
{
	return cli_dispatch("sshkey", argc, argv, subs,
	    sizeof(subs) / sizeof(subs[0]), cmd_sshkey_usage);
}
