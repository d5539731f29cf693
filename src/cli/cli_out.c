/*
 * cli_out.c - tables, JSON, times and terminal prompts for the moat CLI
 * (see cli_out.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "cli_out.h"

#define CELL_MAX 512

struct cli_table {
	size_t ncols, nrows, cap;
	char **cells;		/* (nrows + 1) * ncols; row 0 is the header */
	size_t *width;
};

struct cli_table *
cli_table_new(size_t ncols, const char *const *headers)
{
	struct cli_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->ncols = ncols;
	if ((t->width = calloc(ncols, sizeof(size_t))) == NULL) {
		free(t);
		return NULL;
	}
	if (cli_table_add(t, headers) != 0) {
		cli_table_free(t);
		return NULL;
	}
	return t;
}

int
cli_table_add(struct cli_table *t, const char *const *cells)
{
	char tmp[CELL_MAX];

	if (t->nrows == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 8;
		char **n = reallocarray(t->cells, ncap * t->ncols,
		    sizeof(char *));

		if (n == NULL)
			return MOAT_ERR_NOMEM;
		t->cells = n;
		t->cap = ncap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		char *c = strdup(cli_clean(cells[i], tmp, sizeof(tmp)));
		size_t w;

		if (c == NULL) {
			for (size_t j = 0; j < i; j++)
				free(t->cells[t->nrows * t->ncols + j]);
			return MOAT_ERR_NOMEM;
		}
		t->cells[t->nrows * t->ncols + i] = c;
		if ((w = strlen(c)) > t->width[i])
			t->width[i] = w;
	}
	t->nrows++;
	return 0;
}

void
cli_table_print(const struct cli_table *t, FILE *f)
{
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *c = t->cells[r * t->ncols + i];

			if (i + 1 == t->ncols)
				fprintf(f, "%s\n", c);
			else
				fprintf(f, "%-*s  ", (int)t->width[i], c);
		}
	}
}

void
cli_table_free(struct cli_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->width);
	free(t);
}

void
cli_print_json(const json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS |
	    JSON_ENCODE_ANY);

	if (s != NULL)
		printf("%s\n", s);
	free(s);
}

const char *
cli_clean(const char *s, char *out, size_t outlen)
{
	size_t i = 0;

	if (outlen == 0)
		return out;
	if (s == NULL)
		s = "-";
	for (; *s != '\0' && i + 1 < outlen; s++) {
		unsigned char c = (unsigned char)*s;

		out[i++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[i] = '\0';
	return out;
}

const char *
cli_time(const char *s, char *out, size_t outlen)
{
	char tmp[64];

	if (s == NULL)
		return cli_clean(NULL, out, outlen);
	if (strlen(s) >= 19 && s[10] == 'T' && strlen(s) < sizeof(tmp)) {
		memcpy(tmp, s, 19);
		tmp[10] = ' ';
		tmp[19] = '\0';
		return cli_clean(tmp, out, outlen);
	}
	return cli_clean(s, out, outlen);
}

const char *
cli_epoch(int64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, outlen, "never");
	return out;
}

const char *
cli_join(const json_t *arr, char *out, size_t outlen)
{
	const json_t *v;
	size_t i, n = 0;

	if (outlen == 0)
		return out;
	out[0] = '\0';
	json_array_foreach((json_t *)arr, i, v) {
		const char *s = json_string_value(v);
		int w;

		if (s == NULL)
			continue;
		w = snprintf(out + n, outlen - n, "%s%s", n ? "," : "", s);
		if (w < 0 || (size_t)w >= outlen - n)
			break;
		n += (size_t)w;
	}
	if (n == 0)
		snprintf(out, outlen, "-");
	return out;
}

const char *
cli_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "-";
}

bool
cli_stdout_tty(void)
{
	return isatty(STDOUT_FILENO) == 1;
}

/* ---- prompts ---- */

static int
tty_open(void)
{
	return open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
}

bool
cli_have_tty(void)
{
	int fd = tty_open();

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void
tty_write(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* The terminal to restore when a signal arrives while echo is off. Only
 * this file touches it, and only from the main thread: the CLI is single
 * threaded. */
static volatile sig_atomic_t echo_off_fd = -1;
static struct termios echo_saved;

static void
restore_and_die(int sig)
{
	if (echo_off_fd >= 0) {
		tcsetattr(echo_off_fd, TCSAFLUSH, &echo_saved);
		(void)!write(echo_off_fd, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

int
cli_prompt(const char *prompt, bool secret, char *buf, size_t size)
{
	struct sigaction sa, old_int, old_term, old_hup;
	struct termios t;
	size_t n = 0;
	int fd, r = MOAT_ERR_IO;
	bool toolong = false, echo_off = false;
	char c;

	if (size == 0)
		return MOAT_ERR_TOOBIG;
	if ((fd = tty_open()) < 0)
		return MOAT_ERR_UNSUPPORTED;
	/* Echo goes off before the prompt is shown (as in readpassphrase):
	 * TCSAFLUSH drops typed-ahead input, which must not include an
	 * answer typed after the prompt appeared. */
	if (secret && tcgetattr(fd, &echo_saved) == 0) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = restore_and_die;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		sigaction(SIGHUP, &sa, &old_hup);
		t = echo_saved;
		t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		t.c_lflag |= ICANON;
		echo_off_fd = fd;
		echo_off = tcsetattr(fd, TCSAFLUSH, &t) == 0;
	}
	tty_write(fd, prompt);
	for (;;) {
		ssize_t got = read(fd, &c, 1);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			goto out;
		if (c == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = c;
		else
			toolong = true;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	r = toolong ? MOAT_ERR_TOOBIG : 0;
out:
	if (r != 0)
		explicit_bzero(buf, size);
	if (secret && echo_off_fd >= 0) {
		if (echo_off)
			tcsetattr(fd, TCSAFLUSH, &echo_saved);
		echo_off_fd = -1;
		tty_write(fd, "\n");
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
		sigaction(SIGHUP, &old_hup, NULL);
	}
	close(fd);
	return r;
}

int
cli_confirm(const char *question)
{
	char q[1024], a[16];
	int r;

	snprintf(q, sizeof(q), "%s [y/N] ", question);
	r = cli_prompt(q, false, a, sizeof(a));
	if (r == MOAT_ERR_UNSUPPORTED)
		return r;
	if (r != 0)
		return 0;
	return strcmp(a, "y") == 0 || strcmp(a, "Y") == 0 ||
	    strcmp(a, "yes") == 0 || strcmp(a, "YES") == 0 ||
	    strcmp(a, "Yes") == 0;
}

int
cli_confirm_or_yes(const char *cmd, const char *question, bool yes)
{
	int r;

	if (yes)
		return CLI_OK;
	r = cli_confirm(question);
	if (r == 1)
		return CLI_OK;
	if (r == MOAT_ERR_UNSUPPORTED) {
		fprintf(stderr, "%s: no terminal to confirm on: add --yes to "
		    "go ahead\n", cmd);
		return CLI_USAGE;
	}
	fprintf(stderr, "%s: not confirmed; nothing changed\n", cmd);
	return CLI_FAILED;
}

int
cli_read_stdin(size_t max, bool one_line, char **out, size_t *len)
{
	struct buf b;
	char chunk[4096];
	int r;

	buf_init(&b, max);
	*out = NULL;
	for (;;) {
		ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = MOAT_ERR_IO;
			goto fail;
		}
		if (n == 0)
			break;
		if ((r = buf_append(&b, chunk, (size_t)n)) != 0)
			goto fail;
	}
	if (b.data == NULL && (r = buf_append(&b, "", 0)) != 0)
		goto fail;
	if (one_line && b.len > 0 && b.data[b.len - 1] == '\n') {
		b.data[--b.len] = '\0';
		if (b.len > 0 && b.data[b.len - 1] == '\r')
			b.data[--b.len] = '\0';
	}
	explicit_bzero(chunk, sizeof(chunk));
	*out = buf_steal(&b, len);
	return *out != NULL ? 0 : MOAT_ERR_NOMEM;
fail:
	explicit_bzero(chunk, sizeof(chunk));
	buf_free_wipe(&b);
	return r;
}

void
cli_wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}
