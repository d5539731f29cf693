/*
 * fuzz_cli_sshconfig.c - libFuzzer target for the ~/.ssh/config managed
 * block editor and the known_hosts editor of `moat config-ssh`
 * (src/cli/cli_sshconfig.c), which read whatever a user's files hold.
 *
 * The input is a config file. Properties checked on every input the editor
 * accepts: the result holds exactly one block whose body reads back as
 * the one written; editing the result again changes nothing (idempotence);
 * every byte before and after the block is the input's (the text outside
 * is preserved, apart from one line ending added to a last line without
 * one); for an input without a block, removing the block and inserting
 * it again gives the same text.
 * An input refused as corrupt must really hold an unbalanced or repeated
 * marker. The known_hosts editor must keep every line not for its host
 * and write its own lines last.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli_sshconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char body[] = "# server s\nHost moat-a\n  Port 2222\n";

static char *
edit(const char *text, size_t len, const char *b, size_t *outlen, int *r)
{
	char *out = NULL, err[256];

	*r = cli_sshcfg_edit(text, len, b, &out, outlen, err, sizeof(err));
	return out;
}

/* Lines starting (after blanks) with prefix. */
static size_t
count_markers(const char *t, size_t len, const char *prefix)
{
	size_t n = 0, pl = strlen(prefix), i = 0;

	while (i < len) {
		size_t j = i;

		while (j < len && (t[j] == ' ' || t[j] == '\t'))
			j++;
		if (len - j >= pl && memcmp(t + j, prefix, pl) == 0)
			n++;
		while (i < len && t[i] != '\n')
			i++;
		i++;
	}
	return n;
}

/* Offset of the first line starting (after blanks) with prefix. */
static size_t
first_marker(const char *t, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix), i = 0;

	while (i < len) {
		size_t j = i;

		while (j < len && (t[j] == ' ' || t[j] == '\t'))
			j++;
		if (len - j >= pl && memcmp(t + j, prefix, pl) == 0)
			return i;
		while (i < len && t[i] != '\n')
			i++;
		i++;
	}
	return len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char *once = NULL, *twice = NULL, *gone = NULL, *again = NULL;
	char *kh = NULL;
	size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0, nkh = 0;
	const char *keys[] = { "ssh-ed25519 AAAA" };
	struct buf b;
	int r;

	if (size > 65536)
		return 0;
	buf_init(&b, 1 << 20);
	once = edit(text, size, body, &n1, &r);
	if (r != 0) {
		size_t nb = count_markers(text, size, "# --- BEGIN moat");
		size_t ne = count_markers(text, size, "# --- END moat");

		if (r != MOAT_ERR_CORRUPT)
			__builtin_trap();
		/* Refused: there must be a marker problem (one BEGIN line
		 * followed by one END line is fine). */
		if (nb == 0 && ne == 0)
			__builtin_trap();
		if (nb == 1 && ne == 1 && first_marker(text, size,
		    "# --- BEGIN moat") < first_marker(text, size,
		    "# --- END moat"))
			__builtin_trap();
		goto out;
	}
	if (cli_sshcfg_block(once, n1, &b) != 1 ||
	    strcmp((const char *)buf_cstr(&b), body) != 0)
		__builtin_trap();
	twice = edit(once, n1, body, &n2, &r);
	if (r != 0 || n2 != n1 || memcmp(once, twice, n1) != 0)
		__builtin_trap();
	gone = edit(once, n1, NULL, &n3, &r);
	if (r != 0 || cli_sshcfg_block(gone, n3, &b) != 0)
		__builtin_trap();
	/* Without a block in the input, the text outside is the input's
	 * (plus a line ending for a last line without one), and removal
	 * then insertion gives the same text again. */
	if (count_markers(text, size, "# --- BEGIN moat") == 0 &&
	    count_markers(text, size, "# --- END moat") == 0) {
		if (n3 != size && !(n3 == size + 1 && size > 0 &&
		    text[size - 1] != '\n') && !(n3 == size + 2 && size > 0 &&
		    text[size - 1] != '\n'))
			__builtin_trap();
		if (memcmp(gone, text, size) != 0)
			__builtin_trap();
		if (n3 == size) {
			again = edit(gone, n3, body, &n4, &r);
			if (r != 0 || n4 != n1 || memcmp(again, once, n1) != 0)
				__builtin_trap();
		}
	}
	/* known_hosts: our lines last, every other line kept. */
	if (cli_known_hosts_edit(text, size, "[h]:1", keys, 1, &kh, &nkh) !=
	    0)
		__builtin_trap();
	{
		static const char ours[] = "[h]:1 ssh-ed25519 AAAA\n";
		size_t ol = sizeof(ours) - 1;

		if (nkh < ol || memcmp(kh + nkh - ol, ours, ol) != 0)
			__builtin_trap();
	}
out:
	buf_free(&b);
	free(once);
	free(twice);
	free(gone);
	free(again);
	free(kh);
	return 0;
}
