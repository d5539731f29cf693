/*
 * cmd_ssh.c - "moat ssh", "moat port-forward" and "moat config-ssh": the
 * system OpenSSH client pointed at the server's SSH gateway.
 *
 *   moat ssh [OWNER/]WS [-t] [--dry-run] [-- CMD...]
 *   moat port-forward [OWNER/]WS LOCAL:REMOTE... [--dry-run]
 *   moat config-ssh [--ssh-config FILE] [--dry-run] [--remove]
 *
 * Trust. GET /api/v1/ssh/info names the gateway's address and its public
 * host keys; the answer comes over the API connection, which is verified
 * (system CAs, --ca-file or the certificate pinned at login), so moat
 * writes the keys into its own known_hosts file
 * ($XDG_CONFIG_HOME/moat/known_hosts, mode 0600; lines "[HOST]:PORT KEY",
 * other servers' lines kept) and runs ssh with StrictHostKeyChecking=yes
 * against that file only (GlobalKnownHostsFile=/dev/null,
 * UpdateHostKeys=no): a gateway showing another key is refused by ssh
 * itself.
 *
 * The gateway's login names the workspace: NAME for one's own, OWNER.NAME
 * for someone else's (administrators). moat execs ssh (MOAT_SSH names
 * another program), so ssh's exit status is moat's, and the terminal,
 * agent and ~/.ssh/config work as with plain ssh.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_config.h"
#include "cli_http.h"
#include "cli_out.h"
#include "cli_sshconfig.h"

#define WS_PART_MAX	128
#define SSH_ARGV_MAX	(32 + 2 * CLI_SSH_FWD_MAX)

void
cmd_ssh_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat ssh [OWNER/]WORKSPACE [-t] [--dry-run] [-- CMD...]\n\n"
	    "Opens a shell in the workspace (or runs CMD there) with the system\n"
	    "OpenSSH client, through the server's SSH gateway, with the\n"
	    "gateway's host keys pinned in $XDG_CONFIG_HOME/moat/known_hosts\n"
	    "and strict host key checking. OWNER/WORKSPACE opens someone\n"
	    "else's (administrators). -t forces a terminal for CMD; --dry-run\n"
	    "prints the ssh command instead of running it. Your SSH key must\n"
	    "be registered (moat sshkey add). MOAT_SSH names another ssh\n"
	    "program.\n");
}

void
cmd_port_forward_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat port-forward [OWNER/]WORKSPACE LOCAL:REMOTE... "
	    "[--dry-run]\n\n"
	    "Forwards 127.0.0.1:LOCAL on this machine to 127.0.0.1:REMOTE\n"
	    "inside the workspace (PORT alone means PORT:PORT; up to %d\n"
	    "forwards) until Ctrl-C, with ssh -N through the SSH gateway.\n"
	    "The organization's policy may turn port forwarding off.\n",
	    CLI_SSH_FWD_MAX);
}

void
cmd_config_ssh_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat config-ssh [--ssh-config FILE] [--dry-run] "
	    "[--remove]\n\n"
	    "Writes one 'Host moat-WORKSPACE' entry per workspace of yours into\n"
	    "a managed block of ~/.ssh/config (or FILE), so that 'ssh moat-dev',\n"
	    "VS Code Remote-SSH and JetBrains Gateway find them. The block is\n"
	    "marked BEGIN/END and replaced on each run; everything outside it\n"
	    "stays as it is. A missing file or directory is created (0600,\n"
	    "0700). Run it again after creating or deleting workspaces.\n"
	    "--dry-run prints the block without writing anything; --remove\n"
	    "takes the block out. A file that is a symbolic link, belongs to\n"
	    "another user or is writable by others is refused.\n");
}

/* ---- helpers (cli.h) ---- */

int
cli_ssh_login(const char *ref, const char *me, char *out, size_t outlen)
{
	char owner[WS_PART_MAX], name[WS_PART_MAX];
	int n;

	if (cli_ws_ref(ref, me, owner, sizeof(owner), name, sizeof(name)) !=
	    0 || !cli_ssh_label_ok(name) || (owner[0] != '\0' &&
	    !cli_ssh_label_ok(owner)))
		return MOAT_ERR_INVAL;
	if (owner[0] == '\0' || (me != NULL && strcmp(owner, me) == 0))
		n = snprintf(out, outlen, "%s", name);
	else
		n = snprintf(out, outlen, "%s.%s", owner, name);
	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_TOOBIG : 0;
}

static int
parse_port(const char *s, size_t len, unsigned *out)
{
	char tmp[8];
	uint64_t v;

	if (len == 0 || len >= sizeof(tmp))
		return MOAT_ERR_INVAL;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (cli_parse_uint(tmp, 65535, &v) != 0 || v == 0)
		return MOAT_ERR_INVAL;
	*out = (unsigned)v;
	return 0;
}

int
cli_ssh_forward_spec(const char *spec, unsigned *local, unsigned *remote)
{
	const char *colon = strchr(spec, ':');

	if (colon == NULL) {
		if (parse_port(spec, strlen(spec), local) != 0)
			return MOAT_ERR_INVAL;
		*remote = *local;
		return 0;
	}
	if (parse_port(spec, (size_t)(colon - spec), local) != 0 ||
	    parse_port(colon + 1, strlen(colon + 1), remote) != 0)
		return MOAT_ERR_INVAL;
	return 0;
}

static bool
wildcard_host(const char *h)
{
	return h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 ||
	    strcmp(h, "::") == 0 || strcmp(h, "*") == 0;
}

int
cli_ssh_effective_host(const char *host, const char *url, char *out,
    size_t outlen)
{
	const char *h, *e;
	size_t n;

	if (!wildcard_host(host)) {
		if (!cli_ssh_host_ok(host) || strlen(host) >= outlen)
			return MOAT_ERR_INVAL;
		memcpy(out, host, strlen(host) + 1);
		return 0;
	}
	/* The API URL's host: "https://HOST[:PORT]" or "https://[V6]...". */
	if ((h = strstr(url, "://")) == NULL)
		return MOAT_ERR_INVAL;
	h += 3;
	if (*h == '[') {
		h++;
		if ((e = strchr(h, ']')) == NULL)
			return MOAT_ERR_INVAL;
	} else {
		e = h + strcspn(h, ":/");
	}
	n = (size_t)(e - h);
	if (n == 0 || n >= outlen)
		return MOAT_ERR_INVAL;
	memcpy(out, h, n);
	out[n] = '\0';
	return cli_ssh_host_ok(out) ? 0 : MOAT_ERR_INVAL;
}

int
cli_ssh_parse_args(const char *prog, bool forward, int argc, char **argv,
    struct cli_ssh_args *a, void (*usage)(FILE *f))
{
	const char *pos[1 + CLI_SSH_FWD_MAX];
	int end = argc, r;
	size_t npos;
	const struct cli_opt opts[] = {
		{ "--dry-run", NULL, CLI_OPT_FLAG, &a->dry_run },
		{ "--tty", "-t", CLI_OPT_FLAG, &a->tty },
	};

	memset(a, 0, sizeof(*a));
	/* moat ssh: what follows "--" is the remote command. */
	if (!forward)
		for (int i = 1; i < argc; i++)
			if (strcmp(argv[i], "--") == 0) {
				end = i;
				a->cmd = argv + i + 1;
				a->ncmd = (size_t)(argc - i - 1);
				break;
			}
	if ((r = cli_parse(prog, end, argv, opts, forward ? 1 : 2, pos, forward ?
	    2 : 1, forward ? 1 + CLI_SSH_FWD_MAX : 1, &npos, usage)) != 0)
		return r;
	a->ws = pos[0];
	if (cli_ssh_login(a->ws, NULL, a->login, sizeof(a->login)) != 0) {
		fprintf(stderr, "%s: '%s' is not a workspace: use NAME or "
		    "OWNER/NAME (lower-case letters, digits and '-')\n", prog,
		    a->ws);
		return CLI_PARSE_ERR;
	}
	for (size_t i = 1; i < npos; i++) {
		if (cli_ssh_forward_spec(pos[i], &a->local[a->nfwd],
		    &a->remote[a->nfwd]) != 0) {
			fprintf(stderr, "%s: '%s' is not LOCAL:REMOTE (ports 1 "
			    "to 65535)\n", prog, pos[i]);
			return CLI_PARSE_ERR;
		}
		a->nfwd++;
	}
	return CLI_PARSE_OK;
}

static int
push(char **v, size_t *n, const char *s)
{
	if (*n + 1 >= SSH_ARGV_MAX || (v[*n] = strdup(s)) == NULL)
		return MOAT_ERR_NOMEM;
	(*n)++;
	return 0;
}

void
cli_ssh_argv_free(char **argv)
{
	if (argv == NULL)
		return;
	for (size_t i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

int
cli_ssh_argv(const struct cli_ssh_cmd *s, const char *prog, char ***out)
{
	char **v = NULL, kh[4300], opt[4400], tmp[128];
	size_t n = 0;
	int r;

	*out = NULL;
	if (!cli_ssh_host_ok(s->host) || s->port < 1 || s->port > 65535 ||
	    (s->login[0] == '-' || strchr(s->login, '@') != NULL))
		return MOAT_ERR_INVAL;
	if ((r = cli_ssh_quote_path(s->known_hosts, kh, sizeof(kh))) != 0)
		return r;
	if (s->nfwd > CLI_SSH_FWD_MAX)
		return MOAT_ERR_INVAL;
	if ((v = calloc(SSH_ARGV_MAX + s->ncmd + 1, sizeof(*v))) == NULL)
		return MOAT_ERR_NOMEM;
	snprintf(tmp, sizeof(tmp), "%ld", s->port);
	snprintf(opt, sizeof(opt), "UserKnownHostsFile=%s", kh);
	if ((r = push(v, &n, prog)) != 0 || (r = push(v, &n, "-p")) != 0 ||
	    (r = push(v, &n, tmp)) != 0 || (r = push(v, &n, "-l")) != 0 ||
	    (r = push(v, &n, s->login)) != 0 || (r = push(v, &n, "-o")) != 0 ||
	    (r = push(v, &n, opt)) != 0 || (r = push(v, &n, "-o")) != 0 ||
	    (r = push(v, &n, "GlobalKnownHostsFile=/dev/null")) != 0 ||
	    (r = push(v, &n, "-o")) != 0 ||
	    (r = push(v, &n, "StrictHostKeyChecking=yes")) != 0 ||
	    (r = push(v, &n, "-o")) != 0 ||
	    (r = push(v, &n, "UpdateHostKeys=no")) != 0)
		goto out;
	if (s->tty && (r = push(v, &n, "-t")) != 0)
		goto out;
	if (s->nfwd > 0 && ((r = push(v, &n, "-N")) != 0 ||
	    (r = push(v, &n, "-o")) != 0 ||
	    (r = push(v, &n, "ExitOnForwardFailure=yes")) != 0))
		goto out;
	for (size_t i = 0; i < s->nfwd; i++) {
		snprintf(tmp, sizeof(tmp), "127.0.0.1:%u:127.0.0.1:%u",
		    s->local[i], s->remote[i]);
		if ((r = push(v, &n, "-L")) != 0 || (r = push(v, &n, tmp)) != 0)
			goto out;
	}
	/* "--" first: nothing after it is taken as an option of ssh. */
	if ((r = push(v, &n, "--")) != 0 || (r = push(v, &n, s->host)) != 0)
		goto out;
	for (size_t i = 0; i < s->ncmd; i++) {
		if ((v[n] = strdup(s->cmd[i])) == NULL) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		n++;
	}
	v[n] = NULL;
	*out = v;
	v = NULL;
	r = 0;
out:
	cli_ssh_argv_free(v);
	return r;
}

/* ---- the gateway ---- */

/* $XDG_CONFIG_HOME/moat/known_hosts into out. */
static int
known_hosts_path(char *out, size_t outlen)
{
	char cfg[PATH_MAX];
	int n;

	if (cli_config_default_path(cfg, sizeof(cfg)) != 0)
		return MOAT_ERR_INVAL;
	n = snprintf(out, outlen, "%s/known_hosts", dirname(cfg));
	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_TOOBIG : 0;
}

struct gateway {
	char host[CLI_SSH_HOST_MAX];
	long port;
	char known_hosts[PATH_MAX];
};

/*
 * Asks the server where its gateway is and which keys it shows; with
 * write, pins those keys in moat's known_hosts file. CLI_OK, or an exit
 * status after one line.
 */
static int
gateway_get(const char *prog, struct cli_conn *c, bool write,
    struct gateway *g)
{
	const char *keys[8], *h;
	char host[CLI_SSH_HOST_MAX], pat[CLI_SSH_HOST_MAX + 16], err[1024];
	json_t *info = NULL, *k;
	json_int_t port;
	size_t i, nkeys = 0;
	int status = CLI_FAILED;

	if ((status = cli_api(c, "GET", "/api/v1/ssh/info", NULL, &info)) != 0)
		goto out;
	status = CLI_FAILED;
	port = json_integer_value(json_object_get(info, "port"));
	h = json_string_value(json_object_get(info, "host"));
	if (cli_ssh_effective_host(h != NULL ? h : "-", c->url, host,
	    sizeof(host)) != 0 || port < 1 || port > 65535) {
		fprintf(stderr, "%s: the server's SSH gateway address is not "
		    "usable (check its ssh-public-address setting)\n", prog);
		goto out;
	}
	json_array_foreach(json_object_get(info, "host_keys"), i, k) {
		const char *s = json_string_value(k);

		if (!cli_ssh_key_ok(s) || nkeys >= 8) {
			fprintf(stderr, "%s: the server sent a malformed SSH "
			    "host key\n", prog);
			goto out;
		}
		keys[nkeys++] = s;
	}
	if (nkeys == 0) {
		fprintf(stderr, "%s: the server sent no SSH host key\n", prog);
		goto out;
	}
	memcpy(g->host, host, sizeof(host));
	g->port = (long)port;
	if (known_hosts_path(g->known_hosts, sizeof(g->known_hosts)) != 0) {
		fprintf(stderr, "%s: cannot tell where moat's known_hosts file "
		    "goes (set HOME or XDG_CONFIG_HOME)\n", prog);
		goto out;
	}
	if (!write) {
		status = CLI_OK;
		goto out;
	}
	if (cli_ssh_hostpat(host, g->port, pat, sizeof(pat)) != 0 ||
	    cli_known_hosts_update(g->known_hosts, pat, keys, nkeys, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out;
	}
	status = CLI_OK;
out:
	json_decref(info);
	return status;
}

/* Prints argv as one shell-quoted line. */
static void
print_argv(char **v)
{
	for (size_t i = 0; v[i] != NULL; i++) {
		const char *a = v[i];
		bool plain = a[0] != '\0' && strspn(a, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") ==
		    strlen(a);

		if (i > 0)
			putchar(' ');
		if (plain) {
			fputs(a, stdout);
			continue;
		}
		putchar('\'');
		for (; *a != '\0'; a++) {
			if (*a == '\'')
				fputs("'\\''", stdout);
			else
				putchar(*a);
		}
		putchar('\'');
	}
	putchar('\n');
}

/* moat ssh and moat port-forward. */
static int
run_ssh(const char *prog, bool forward, int argc, char **argv,
    void (*usage)(FILE *f))
{
	struct cli_ssh_args a;
	struct cli_ssh_cmd s;
	struct cli_conn *c = NULL;
	struct gateway g;
	char **v = NULL;
	const char *ssh = getenv("MOAT_SSH");
	int r, status;

	if ((r = cli_ssh_parse_args(prog, forward, argc, argv, &a, usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	status = CLI_FAILED;
	if (cli_ssh_login(a.ws, c->username, a.login, sizeof(a.login)) != 0) {
		fprintf(stderr, "%s: '%s' is not a workspace\n", prog, a.ws);
		status = CLI_USAGE;
		goto out;
	}
	if ((status = gateway_get(prog, c, !a.dry_run, &g)) != 0)
		goto out;
	status = CLI_FAILED;
	memset(&s, 0, sizeof(s));
	s.host = g.host;
	s.port = g.port;
	s.known_hosts = g.known_hosts;
	s.login = a.login;
	s.tty = a.tty;
	s.nfwd = a.nfwd;
	memcpy(s.local, a.local, sizeof(s.local));
	memcpy(s.remote, a.remote, sizeof(s.remote));
	s.cmd = a.cmd;
	s.ncmd = a.ncmd;
	if (ssh == NULL || ssh[0] == '\0')
		ssh = "ssh";
	if (cli_ssh_argv(&s, ssh, &v) != 0) {
		fprintf(stderr, "%s: cannot build the ssh command (is the "
		    "known_hosts path %s usable?)\n", prog, g.known_hosts);
		goto out;
	}
	if (a.dry_run) {
		print_argv(v);
		status = CLI_OK;
		goto out;
	}
	if (forward) {
		for (size_t i = 0; i < a.nfwd; i++)
			fprintf(stderr, "Forwarding 127.0.0.1:%u to port %u in "
			    "workspace %s\n", a.local[i], a.remote[i], a.ws);
		fprintf(stderr, "(Ctrl-C stops)\n");
	}
	fflush(stdout);
	fflush(stderr);
	/* Nothing of ours needs to outlive the exec; the token is wiped. */
	cli_conn_free(c);
	c = NULL;
	execvp(v[0], v);
	fprintf(stderr, "%s: cannot run %s: %s\n", prog, v[0], strerror(errno));
	status = errno == ENOENT ? 127 : 126;
out:
	cli_ssh_argv_free(v);
	cli_conn_free(c);
	return status;
}

int
cmd_ssh(int argc, char **argv)
{
	return run_ssh("moat ssh", false, argc, argv, cmd_ssh_usage);
}

int
cmd_port_forward(int argc, char **argv)
{
	return run_ssh("moat port-forward", true, argc, argv,
	    cmd_port_forward_usage);
}

/* ---- moat config-ssh ---- */

static int
by_alias(const void *a, const void *b)
{
	return strcmp(((const struct cli_sshcfg_host *)a)->alias,
	    ((const struct cli_sshcfg_host *)b)->alias);
}

/* ~/.ssh/config into out. */
static int
ssh_config_path(char *out, size_t outlen)
{
	const char *home = getenv("HOME");
	int n;

	if (home == NULL || home[0] != '/')
		return MOAT_ERR_INVAL;
	n = snprintf(out, outlen, "%s/.ssh/config", home);
	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_TOOBIG : 0;
}

int
cmd_config_ssh(int argc, char **argv)
{
	static const char prog[] = "moat config-ssh";
	struct cli_conn *c = NULL;
	struct cli_sshcfg_host *hosts = NULL;
	struct gateway g;
	struct buf body;
	const char *pos[1], *file = NULL;
	char path[PATH_MAX], about[512], err[1024];
	json_t *list = NULL, *w;
	bool dry = false, remove = false, changed = false;
	size_t npos, i, n = 0, nws;
	int r, status = CLI_FAILED;
	const struct cli_opt opts[] = {
		{ "--ssh-config", "-F", CLI_OPT_STR, &file },
		{ "--dry-run", NULL, CLI_OPT_FLAG, &dry },
		{ "--remove", NULL, CLI_OPT_FLAG, &remove },
	};

	buf_init(&body, CLI_SSHCFG_MAX);
	if ((r = cli_parse(prog, argc, argv, opts, 3, pos, 0, 0, &npos,
	    cmd_config_ssh_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (file != NULL) {
		if (file[0] == '\0' || strlen(file) >= sizeof(path)) {
			fprintf(stderr, "%s: --ssh-config needs a file name\n",
			    prog);
			return CLI_USAGE;
		}
		memcpy(path, file, strlen(file) + 1);
	} else if (ssh_config_path(path, sizeof(path)) != 0) {
		fprintf(stderr, "%s: HOME is not set: give --ssh-config FILE\n",
		    prog);
		return CLI_USAGE;
	}
	if (remove) {
		if (dry) {
			printf("would remove moat's block from %s\n", path);
			return CLI_OK;
		}
		if (cli_sshcfg_update(path, NULL, &changed, err,
		    sizeof(err)) != 0) {
			fprintf(stderr, "%s: %s\n", prog, err);
			return CLI_FAILED;
		}
		printf(changed ? "Removed moat's block from %s\n" :
		    "%s has no moat block\n", path);
		return CLI_OK;
	}
	if ((status = cli_conn_open(&c)) != 0)
		goto out;
	if ((status = gateway_get(prog, c, !dry, &g)) != 0)
		goto out;
	if ((status = cli_api(c, "GET", "/api/v1/workspaces", NULL, &list)) !=
	    0)
		goto out;
	status = CLI_FAILED;
	nws = json_array_size(json_object_get(list, "workspaces"));
	if ((hosts = calloc(nws + 1, sizeof(*hosts))) == NULL)
		goto out;
	json_array_foreach(json_object_get(list, "workspaces"), i, w) {
		const char *name = json_string_value(json_object_get(w, "name"));
		char alias[80], login[80], *a, *l;

		if (!cli_ssh_label_ok(name)) {
			fprintf(stderr, "%s: skipping a workspace with an "
			    "unusable name\n", prog);
			continue;
		}
		snprintf(alias, sizeof(alias), "moat-%s", name);
		snprintf(login, sizeof(login), "%s", name);
		if ((a = strdup(alias)) == NULL || (l = strdup(login)) ==
		    NULL) {
			free(a);
			goto out;
		}
		hosts[n].alias = a;
		hosts[n].user = l;
		n++;
	}
	qsort(hosts, n, sizeof(*hosts), by_alias);
	snprintf(about, sizeof(about), "server %s (%s), user %s; run moat "
	    "config-ssh again after creating or deleting workspaces", c->name,
	    c->url, c->username != NULL ? c->username : "?");
	if (cli_sshcfg_render(about, g.host, g.port, g.known_hosts, hosts, n,
	    &body) != 0) {
		fprintf(stderr, "%s: cannot write entries for the gateway %s:%ld "
		    "with known_hosts %s\n", prog, g.host, g.port, g.known_hosts);
		goto out;
	}
	if (dry) {
		printf("%s\n%s%s\n", CLI_SSHCFG_BEGIN, buf_cstr(&body),
		    CLI_SSHCFG_END);
		status = CLI_OK;
		goto out;
	}
	if (cli_sshcfg_update(path, buf_cstr(&body), &changed, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out;
	}
	if (changed)
		printf("Wrote %zu host entr%s to %s:", n, n == 1 ? "y" : "ies",
		    path);
	else
		printf("%s is up to date (%zu host entr%s):", path, n,
		    n == 1 ? "y" : "ies");
	for (i = 0; i < n; i++)
		printf(" %s", hosts[i].alias);
	printf(n == 0 ? " none\n" : "\n");
	status = CLI_OK;
out:
	for (i = 0; hosts != NULL && i < n; i++) {
		free((char *)hosts[i].alias);
		free((char *)hosts[i].user);
	}
	free(hosts);
	buf_free(&body);
	json_decref(list);
	cli_conn_free(c);
	return status;
}
