/*
 * test_sshkey.c - unit tests for sshkey.c: real keys made by ssh-keygen in
 * a mkdtemp directory (Ed25519, ECDSA on the three curves, RSA 2048 and
 * 1024, DSA when this OpenSSH still makes them, a real certificate) are
 * accepted or refused, and every accepted key's fingerprint must equal
 * `ssh-keygen -lf`'s; FIDO keys are built by hand from real key material
 * and checked against ssh-keygen the same way. Malformed lines: bad or
 * non-canonical base64, truncated blobs, type mismatches, trailing bytes,
 * bad curve points, weak RSA numbers, options, oversized lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "buf.h"
#include "identity/sshkey.h"

static char tmpdir[64];

static int
run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* The first line of a file (without its newline), caller frees. */
static char *
slurp_line(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (f == NULL)
		return NULL;
	n = getline(&line, &cap, f);
	fclose(f);
	if (n <= 0) {
		free(line);
		return NULL;
	}
	if (line[n - 1] == '\n')
		line[n - 1] = '\0';
	return line;
}

/* ssh-keygen's SHA256 fingerprint of a public key file. */
static void
keygen_fp(const char *path, char *out, size_t outlen)
{
	char cmd[512], line[1024], fp[128];
	unsigned bits;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ssh-keygen -E sha256 -lf '%s' 2>&1", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (fgets(line, sizeof(line), p) == NULL)
		line[0] = '\0';
	pclose(p);
	if (sscanf(line, "%u %127s", &bits, fp) != 2)
		fail_msg("ssh-keygen -lf %s: %s", path, line);
	snprintf(out, outlen, "%s", fp);
}

static int
setup(void **state)
{
	/* key type and size, file name, comment */
	static const char *const gen[][3] = {
		{ "-t ed25519", "ed25519", "alice@laptop" },
		{ "-t ecdsa -b 256", "ecdsa256", "" },
		{ "-t ecdsa -b 384", "ecdsa384", "x" },
		{ "-t ecdsa -b 521", "ecdsa521", "x" },
		{ "-t rsa -b 2048", "rsa2048", "x" },
		{ "-t rsa -b 1024", "rsa1024", "x" },
		{ "-t ed25519", "ca", "ca" },
	};
	size_t i;

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_sshkey.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	for (i = 0; i < sizeof(gen) / sizeof(gen[0]); i++) {
		if (run("ssh-keygen -q -N '' %s -f %s/%s -C '%s' </dev/null "
		    ">/dev/null 2>&1", gen[i][0], tmpdir, gen[i][1],
		    gen[i][2]) != 0)
			return -1;
	}
	/* A real certificate for the Ed25519 key. */
	if (run("ssh-keygen -q -s %s/ca -I test -n alice %s/ed25519.pub "
	    ">/dev/null 2>&1", tmpdir, tmpdir) != 0)
		return -1;
	/* DSA: OpenSSH may refuse to make one; tests then use a blob. */
	(void)run("ssh-keygen -q -N '' -t dsa -f %s/dsa </dev/null "
	    ">/dev/null 2>&1", tmpdir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (tmpdir[0] != '\0')
		(void)run("rm -rf '%s'", tmpdir);
	return 0;
}

static char *
pubkey(const char *name)
{
	char path[256];
	char *line;

	snprintf(path, sizeof(path), "%s/%s.pub", tmpdir, name);
	line = slurp_line(path);
	if (line == NULL)
		fail_msg("cannot read %s", path);
	return line;
}

/* A key file must be accepted with the given type and bits, and the
 * fingerprint ssh-keygen computes. */
static void
accept_file(const char *name, const char *type, unsigned bits)
{
	char path[256], fp[128], err[256] = "";
	struct sshkey_info info;
	char *line = pubkey(name), *sp;

	snprintf(path, sizeof(path), "%s/%s.pub", tmpdir, name);
	if (sshkey_parse(line, strlen(line), &info, err, sizeof(err)) != 0)
		fail_msg("%s refused: %s", name, err);
	keygen_fp(path, fp, sizeof(fp));
	assert_string_equal(info.fingerprint, fp);
	assert_string_equal(info.type, type);
	assert_int_equal(info.bits, bits);
	/* canonical: the line's first two fields */
	sp = strchr(line, ' ');
	assert_non_null(sp);
	sp = strchr(sp + 1, ' ');
	if (sp != NULL)
		*sp = '\0';
	assert_string_equal(info.canonical, line);
	free(info.canonical);
	free(line);
}

static void
expect_bad(const char *line, size_t len, int code, const char *want)
{
	struct sshkey_info info;
	char err[256] = "";
	int r;

	memset(&info, 0x5a, sizeof(info));
	r = sshkey_parse(line, len, &info, err, sizeof(err));
	if (r != code || strstr(err, want) == NULL)
		fail_msg("line %.80s: got %d (%s), want %d (%s)", line, r, err,
		    code, want);
	assert_null(info.canonical);
}

#define BAD(line, want) expect_bad((line), strlen(line), MOAT_ERR_INVAL, (want))

/* ---- building blobs by hand ---- */

static void
put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v };

	assert_int_equal(buf_append(b, x, 4), 0);
}

static void
put_str(struct buf *b, const void *p, size_t n)
{
	put_u32(b, (uint32_t)n);
	if (n > 0)
		assert_int_equal(buf_append(b, p, n), 0);
}

static void
put_cstr(struct buf *b, const char *s)
{
	put_str(b, s, strlen(s));
}

/* "TYPE BASE64(blob)[ COMMENT]", caller frees. */
static char *
make_line(const char *type, const uint8_t *blob, size_t n, const char *cmt)
{
	size_t cap = strlen(type) + 2 + (n + 2) / 3 * 4 + 1 + strlen(cmt) + 1;
	char *line = malloc(cap);
	size_t o;

	assert_non_null(line);
	o = (size_t)snprintf(line, cap, "%s ", type);
	o += (size_t)EVP_EncodeBlock((unsigned char *)line + o, blob, (int)n);
	if (cmt[0] != '\0')
		snprintf(line + o, cap - o, " %s", cmt);
	return line;
}

/* The blob of a key line, decoded (caller frees). */
static uint8_t *
line_blob(const char *line, size_t *n)
{
	const char *b = strchr(line, ' ') + 1;
	const char *e = strchr(b, ' ');
	size_t bl = e != NULL ? (size_t)(e - b) : strlen(b);
	uint8_t *out = malloc(bl);
	int got;

	assert_non_null(out);
	got = EVP_DecodeBlock(out, (const unsigned char *)b, (int)bl);
	assert_true(got > 0);
	*n = (size_t)got - (b[bl - 1] == '=') - (b[bl - 2] == '=');
	return out;
}

/* The field after the type string in a blob (the Ed25519 key, the curve
 * name...): returns a pointer into blob and its length. */
static const uint8_t *
blob_field(const uint8_t *blob, size_t n, int idx, size_t *len)
{
	size_t off = 0;
	int i;

	for (i = 0; ; i++) {
		uint32_t l;

		assert_true(off + 4 <= n);
		l = (uint32_t)blob[off] << 24 | (uint32_t)blob[off + 1] << 16 |
		    (uint32_t)blob[off + 2] << 8 | blob[off + 3];
		assert_true(off + 4 + l <= n);
		if (i == idx) {
			*len = l;
			return blob + off + 4;
		}
		off += 4 + l;
	}
}

/* Writes line to NAME.pub in tmpdir, parses it, and compares the
 * fingerprint with ssh-keygen's. */
static void
accept_line_keygen(const char *name, const char *line, const char *type,
    unsigned bits)
{
	char path[256], fp[128], err[256] = "";
	struct sshkey_info info;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.pub", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", line);
	fclose(f);
	if (sshkey_parse(line, strlen(line), &info, err, sizeof(err)) != 0)
		fail_msg("%s refused: %s", name, err);
	keygen_fp(path, fp, sizeof(fp));
	assert_string_equal(info.fingerprint, fp);
	assert_string_equal(info.type, type);
	assert_int_equal(info.bits, bits);
	free(info.canonical);
}

/* ---- tests ---- */

static void
test_real_keys(void **state)
{
	struct sshkey_info info;
	char err[256];
	char *line;

	(void)state;
	accept_file("ed25519", "ssh-ed25519", 256);
	accept_file("ecdsa256", "ecdsa-sha2-nistp256", 256);
	accept_file("ecdsa384", "ecdsa-sha2-nistp384", 384);
	accept_file("ecdsa521", "ecdsa-sha2-nistp521", 521);
	accept_file("rsa2048", "ssh-rsa", 2048);
	/* the comment is kept */
	line = pubkey("ed25519");
	assert_int_equal(sshkey_parse(line, strlen(line), &info, err,
	    sizeof(err)), 0);
	assert_string_equal(info.comment, "alice@laptop");
	free(info.canonical);
	free(line);
}

static void
test_weak_and_refused_types(void **state)
{
	char path[256];
	char *line;

	(void)state;
	line = pubkey("rsa1024");
	BAD(line, "at least 2048 bits (this one has 1024)");
	free(line);
	/* a real OpenSSH certificate */
	line = pubkey("ed25519-cert");
	assert_non_null(strstr(line, "ssh-ed25519-cert-v01@openssh.com"));
	BAD(line, "certificates are not accepted");
	free(line);
	/* DSA: a real key when this OpenSSH makes one, else a blob */
	snprintf(path, sizeof(path), "%s/dsa.pub", tmpdir);
	line = slurp_line(path);
	if (line == NULL) {
		struct buf b;
		uint8_t one = 1;

		buf_init(&b, 4096);
		put_cstr(&b, "ssh-dss");
		put_str(&b, &one, 1);
		put_str(&b, &one, 1);
		put_str(&b, &one, 1);
		put_str(&b, &one, 1);
		line = make_line("ssh-dss", b.data, b.len, "");
		buf_free(&b);
	}
	BAD(line, "DSA keys are not accepted");
	free(line);
	BAD("ssh-rsa-cert-v01@openssh.com AAAA", "certificates");
	BAD("ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA", "certificates");
	BAD("ssh-foo AAAA", "unknown or unsupported key type");
	BAD("rsa-sha2-256 AAAA", "unknown or unsupported key type");
	BAD("ssh-ed448 AAAA", "unknown or unsupported key type");
}

static void
test_options_refused(void **state)
{
	char buf[2048];
	char *line;

	(void)state;
	line = pubkey("ed25519");
	snprintf(buf, sizeof(buf), "command=\"echo hi\" %s", line);
	BAD(buf, "options before the key type");
	snprintf(buf, sizeof(buf), "no-pty,no-agent-forwarding %s", line);
	BAD(buf, "options before the key type");
	snprintf(buf, sizeof(buf), "restrict %s", line);
	BAD(buf, "options before the key type");
	snprintf(buf, sizeof(buf), "from=\"10.0.0.0/8\" %s", line);
	BAD(buf, "options before the key type");
	free(line);
}

static void
test_fido_keys(void **state)
{
	const uint8_t *pk, *q;
	uint8_t *blob;
	size_t n, pkn, qn;
	struct buf b;
	char *line, *ed, *ec;

	(void)state;
	ed = pubkey("ed25519");
	blob = line_blob(ed, &n);
	pk = blob_field(blob, n, 1, &pkn);
	assert_int_equal(pkn, 32);
	buf_init(&b, 4096);
	put_cstr(&b, "sk-ssh-ed25519@openssh.com");
	put_str(&b, pk, pkn);
	put_cstr(&b, "ssh:");
	line = make_line("sk-ssh-ed25519@openssh.com", b.data, b.len,
	    "fido@key");
	accept_line_keygen("sked", line, "sk-ssh-ed25519@openssh.com", 256);
	free(line);
	/* without the application: truncated */
	buf_reset(&b);
	put_cstr(&b, "sk-ssh-ed25519@openssh.com");
	put_str(&b, pk, pkn);
	line = make_line("sk-ssh-ed25519@openssh.com", b.data, b.len, "");
	BAD(line, "no FIDO application");
	free(line);
	/* with an empty application */
	put_cstr(&b, "");
	line = make_line("sk-ssh-ed25519@openssh.com", b.data, b.len, "");
	BAD(line, "FIDO application is not valid");
	free(line);
	free(blob);

	ec = pubkey("ecdsa256");
	blob = line_blob(ec, &n);
	q = blob_field(blob, n, 2, &qn);
	buf_reset(&b);
	put_cstr(&b, "sk-ecdsa-sha2-nistp256@openssh.com");
	put_cstr(&b, "nistp256");
	put_str(&b, q, qn);
	put_cstr(&b, "ssh:moat");
	line = make_line("sk-ecdsa-sha2-nistp256@openssh.com", b.data, b.len,
	    "");
	accept_line_keygen("skec", line, "sk-ecdsa-sha2-nistp256@openssh.com",
	    256);
	free(line);
	/* the plain type with an sk blob: mismatch */
	line = make_line("ecdsa-sha2-nistp256", b.data, b.len, "");
	BAD(line, "of another type than the line says");
	free(line);
	buf_free(&b);
	free(blob);
	free(ec);
	free(ed);
}

static void
test_malformed_blobs(void **state)
{
	uint8_t *blob, *blob2;
	const uint8_t *pk, *q;
	size_t n, n2, pkn, qn;
	struct buf b;
	char *line, *ed, *rsa, *ec;

	(void)state;
	ed = pubkey("ed25519");
	blob = line_blob(ed, &n);
	/* truncated blob (every shorter length, re-encoded) */
	for (size_t cut = 0; cut < n; cut++) {
		line = make_line("ssh-ed25519", blob, cut, "");
		if (cut == 0)
			BAD(line, "the key data is missing");
		else
			BAD(line, "truncated");
		free(line);
	}
	/* trailing bytes */
	buf_init(&b, 8192);
	assert_int_equal(buf_append(&b, blob, n), 0);
	assert_int_equal(buf_append(&b, "\0", 1), 0);
	line = make_line("ssh-ed25519", b.data, b.len, "");
	BAD(line, "trailing bytes");
	free(line);
	/* the outer type differs from the inner one */
	line = make_line("ssh-rsa", blob, n, "");
	BAD(line, "of another type");
	free(line);
	line = make_line("ecdsa-sha2-nistp256", blob, n, "");
	BAD(line, "of another type");
	free(line);
	/* a 31-byte Ed25519 key */
	pk = blob_field(blob, n, 1, &pkn);
	buf_reset(&b);
	put_cstr(&b, "ssh-ed25519");
	put_str(&b, pk, 31);
	line = make_line("ssh-ed25519", b.data, b.len, "");
	BAD(line, "32 bytes");
	free(line);
	/* a length prefix past the end */
	buf_reset(&b);
	put_cstr(&b, "ssh-ed25519");
	put_u32(&b, 0xffffffffu);
	assert_int_equal(buf_append(&b, pk, 32), 0);
	line = make_line("ssh-ed25519", b.data, b.len, "");
	BAD(line, "truncated");
	free(line);
	free(blob);

	/* ECDSA: curve mismatch, off-curve point, compressed point */
	ec = pubkey("ecdsa256");
	blob = line_blob(ec, &n);
	q = blob_field(blob, n, 2, &qn);
	assert_int_equal(qn, 65);
	buf_reset(&b);
	put_cstr(&b, "ecdsa-sha2-nistp256");
	put_cstr(&b, "nistp384");
	put_str(&b, q, qn);
	line = make_line("ecdsa-sha2-nistp256", b.data, b.len, "");
	BAD(line, "curve in the key data does not match");
	free(line);
	{
		uint8_t bad[65];

		memcpy(bad, q, 65);
		bad[64] ^= 1;	/* y off by one bit: not on the curve */
		buf_reset(&b);
		put_cstr(&b, "ecdsa-sha2-nistp256");
		put_cstr(&b, "nistp256");
		put_str(&b, bad, 65);
		line = make_line("ecdsa-sha2-nistp256", b.data, b.len, "");
		BAD(line, "not a valid point");
		free(line);
		/* x = p (out of the field), y from the real key */
		memset(bad + 1, 0xff, 32);
		bad[1 + 4] = 0; bad[1 + 5] = 0; bad[1 + 6] = 0; bad[1 + 7] = 1;
		memset(bad + 1 + 8, 0, 12);
		buf_reset(&b);
		put_cstr(&b, "ecdsa-sha2-nistp256");
		put_cstr(&b, "nistp256");
		put_str(&b, bad, 65);
		line = make_line("ecdsa-sha2-nistp256", b.data, b.len, "");
		BAD(line, "not a valid point");
		free(line);
		/* compressed form */
		memcpy(bad, q, 33);
		bad[0] = (uint8_t)(0x02 | (q[64] & 1));
		buf_reset(&b);
		put_cstr(&b, "ecdsa-sha2-nistp256");
		put_cstr(&b, "nistp256");
		put_str(&b, bad, 33);
		line = make_line("ecdsa-sha2-nistp256", b.data, b.len, "");
		BAD(line, "uncompressed");
		free(line);
		/* the P-256 point under the P-384 type and curve name */
		buf_reset(&b);
		put_cstr(&b, "ecdsa-sha2-nistp384");
		put_cstr(&b, "nistp384");
		put_str(&b, q, qn);
		line = make_line("ecdsa-sha2-nistp384", b.data, b.len, "");
		BAD(line, "uncompressed");
		free(line);
	}
	free(blob);

	/* RSA numbers */
	rsa = pubkey("rsa2048");
	blob = line_blob(rsa, &n);
	{
		const uint8_t *e, *mod;
		size_t en, modn;
		uint8_t four = 4, neg[257];

		e = blob_field(blob, n, 1, &en);
		mod = blob_field(blob, n, 2, &modn);
		assert_true(modn == 257 && mod[0] == 0);
		/* even exponent */
		buf_reset(&b);
		put_cstr(&b, "ssh-rsa");
		put_str(&b, &four, 1);
		put_str(&b, mod, modn);
		line = make_line("ssh-rsa", b.data, b.len, "");
		BAD(line, "exponent must be odd");
		free(line);
		/* exponent 1 */
		four = 1;
		buf_reset(&b);
		put_cstr(&b, "ssh-rsa");
		put_str(&b, &four, 1);
		put_str(&b, mod, modn);
		line = make_line("ssh-rsa", b.data, b.len, "");
		BAD(line, "at least 3");
		free(line);
		/* negative modulus (leading zero dropped) */
		buf_reset(&b);
		put_cstr(&b, "ssh-rsa");
		put_str(&b, e, en);
		put_str(&b, mod + 1, modn - 1);
		line = make_line("ssh-rsa", b.data, b.len, "");
		BAD(line, "zero or negative");
		free(line);
		/* a needless leading zero */
		{
			uint8_t padded[258];

			padded[0] = 0;
			memcpy(padded + 1, mod, 257);
			buf_reset(&b);
			put_cstr(&b, "ssh-rsa");
			put_str(&b, e, en);
			put_str(&b, padded, 258);
			line = make_line("ssh-rsa", b.data, b.len, "");
			BAD(line, "minimally encoded");
			free(line);
		}
		/* even modulus */
		memcpy(neg, mod, 257);
		neg[256] &= 0xfe;
		buf_reset(&b);
		put_cstr(&b, "ssh-rsa");
		put_str(&b, e, en);
		put_str(&b, neg, 257);
		line = make_line("ssh-rsa", b.data, b.len, "");
		BAD(line, "modulus is not valid");
		free(line);
		/* empty e */
		buf_reset(&b);
		put_cstr(&b, "ssh-rsa");
		put_str(&b, e, 0);
		put_str(&b, mod, modn);
		line = make_line("ssh-rsa", b.data, b.len, "");
		BAD(line, "zero or negative");
		free(line);
	}
	blob2 = line_blob(rsa, &n2);
	assert_int_equal(n2, n);
	free(blob2);
	free(blob);
	buf_free(&b);
	free(rsa);
	free(ec);
	free(ed);
}

static void
test_base64_and_line(void **state)
{
	char buf[20000], *line, *b64, *sp;
	struct sshkey_info info;
	char err[256];
	size_t l;

	(void)state;
	line = pubkey("ed25519");
	b64 = strchr(line, ' ') + 1;
	sp = strchr(b64, ' ');
	*sp = '\0';	/* line = "ssh-ed25519 BASE64" now */
	l = strlen(b64);
	/* a character outside the alphabet */
	snprintf(buf, sizeof(buf), "ssh-ed25519 %.*s!%s", 4, b64, b64 + 5);
	BAD(buf, "not valid base64");
	/* URL-safe alphabet */
	snprintf(buf, sizeof(buf), "ssh-ed25519 %.*s-%s", 4, b64, b64 + 5);
	BAD(buf, "not valid base64");
	/* not a multiple of four */
	snprintf(buf, sizeof(buf), "ssh-ed25519 %.*s", (int)l - 1, b64);
	BAD(buf, "not valid base64");
	/* garbage glued to the base64 */
	snprintf(buf, sizeof(buf), "ssh-ed25519 %sxyz", b64);
	BAD(buf, "not valid base64");
	snprintf(buf, sizeof(buf), "ssh-ed25519 %sAAAA", b64);
	BAD(buf, "trailing bytes");
	/* padding in the middle */
	snprintf(buf, sizeof(buf), "ssh-ed25519 AA==%s", b64);
	BAD(buf, "not valid base64");
	/* "AB==" and "AA==" decode alike: only the canonical one passes */
	BAD("ssh-ed25519 AB==", "not canonical");
	BAD("ssh-ed25519 AAB=", "not canonical");
	BAD("ssh-ed25519 ====", "not valid base64");
	BAD("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "truncated");
	/* missing data, empty line, comment line, two lines */
	BAD("ssh-ed25519", "the key data is missing");
	BAD("ssh-ed25519   ", "the key data is missing");
	BAD("", "empty");
	BAD("  \t \n", "empty");
	BAD("# ssh-ed25519 AAAA", "comment");
	snprintf(buf, sizeof(buf), "%s\n%s\n", line, line);
	BAD(buf, "single line");
	expect_bad("ssh-ed25519 \0AAAA", 17, MOAT_ERR_INVAL, "single line");
	/* blanks, tabs and CRLF around the key are fine */
	snprintf(buf, sizeof(buf), " \tssh-ed25519\t %s  a  b c \r\n", b64);
	assert_int_equal(sshkey_parse(buf, strlen(buf), &info, err,
	    sizeof(err)), 0);
	assert_string_equal(info.comment, "a  b c");
	assert_string_equal(info.canonical, line);
	free(info.canonical);
	/* comments: UTF-8 kept, cut at a character boundary, controls and
	 * invalid UTF-8 refused */
	{
		char cmt[400];
		size_t i;

		for (i = 0; i < 127; i++)
			memcpy(cmt + 2 * i, "\xc3\xa9", 2);	/* 254 bytes */
		memcpy(cmt + 254, "\xc3\xa9x", 4);
		snprintf(buf, sizeof(buf), "%s %s", line, cmt);
		assert_int_equal(sshkey_parse(buf, strlen(buf), &info, err,
		    sizeof(err)), 0);
		assert_int_equal(strlen(info.comment), 254);
		free(info.canonical);
	}
	snprintf(buf, sizeof(buf), "%s bad\x01" "cmt", line);
	BAD(buf, "control characters");
	snprintf(buf, sizeof(buf), "%s bad\xc3(", line);
	BAD(buf, "not valid UTF-8");
	snprintf(buf, sizeof(buf), "%s bad\xed\xa0\x80", line);
	BAD(buf, "not valid UTF-8");
	/* the size cap */
	memset(buf, ' ', sizeof(buf));
	memcpy(buf, line, strlen(line));
	expect_bad(buf, 16 * 1024 + 1, MOAT_ERR_TOOBIG, "longer than 16 KiB");
	assert_int_equal(sshkey_parse(buf, 16 * 1024, &info, err,
	    sizeof(err)), 0);
	free(info.canonical);
	free(line);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_keys),
		cmocka_unit_test(test_weak_and_refused_types),
		cmocka_unit_test(test_options_refused),
		cmocka_unit_test(test_fido_keys),
		cmocka_unit_test(test_malformed_blobs),
		cmocka_unit_test(test_base64_and_line),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
