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
#include "cli_cmd.h"
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

static void
sshkey_row(const struct cli_conn *c, const json_t *k, const char **row,
    char cell[][CLI_CELL_MAX])
{
	(void)c;
	row[0] = cli_str(k, "id");
	row[1] = cli_str(k, "name");
	row[2] = cli_str(k, "type");
	row[3] = cli_str(k, "fingerprint");
	row[4] = cli_time(json_string_value(json_object_get(k, "created_at")),
	    cell[4], CLI_CELL_MAX);
}

static int
sshkey_list(int argc, char **argv)
{
	static const char *const head[] = { "ID", "NAME", "TYPE",
	    "FINGERPRINT", "ADDED" };
	static const struct cli_list_cmd cmd = {
		"moat sshkey list", cmd_sshkey_usage, "/api/v1/ssh-keys",
		"ssh_keys", false, 5, head, sshkey_row,
		NULL, 0, NULL, NULL,
	};

	return cli_run_list(&cmd, argc, argv);
}

static void
sshkey_question(const struct cli_conn *c, const char *id, const char *name,
    char *q, size_t qlen)
{
	char cn[96];

	(void)c;
	snprintf(q, qlen, "Remove SSH key %s (%s)?", cli_clean(name, cn,
	    sizeof(cn)), id);
}

static int
sshkey_remove(int argc, char **argv)
{
	static const struct cli_remove_cmd cmd = {
		"moat sshkey remove", cmd_sshkey_usage, "/api/v1/ssh-keys",
		"ssh_keys", "SSH key", "Removed", sshkey_question,
	};

	return cli_run_remove(&cmd, argc, argv);
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
