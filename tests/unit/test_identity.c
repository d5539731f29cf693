/*
 * test_identity.c - unit tests for identity (src/moatd/identity): the name
 * and password rules, argon2id, login throttling, API tokens, sessions and
 * their cache, disabling users, TOTP, `moatd init`'s first admin and
 * `moatd reset-password`.
 *
 * Everything runs against a real data directory made by moatd_init_dir()
 * in a mkdtemp directory: real keys (ES256 JWTs, AES-GCM envelopes), a real
 * SQLite store, a real audit chain checked with audit_verify_file().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <liboath/oath.h>

#include "app.h"
#include "audit.h"
#include "digest.h"
#include "identity/bootstrap.h"
#include "identity/identity.h"
#include "identity/identity_int.h"
#include "identity/reset.h"
#include "policy.h"
#include "secrets/init.h"
#include "secrets/keys.h"
#include "store/schema.h"
#include "store/store.h"

#define PW "tall-lantern-river-42"

struct env {
	char root[64];
	char dir[128];		/* the data directory */
	struct store *st;
	struct keys *keys;
	struct app app;
	struct identity *id;
	char hash[128];		/* argon2id of PW, made once */
};

static struct env *E;

static int
rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void __attribute__((format(printf, 3, 4)))
pathf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < outlen);
}

static void
make_data_dir(char *root, size_t rootlen, char *dir, size_t dirlen)
{
	char err[256] = "";
	struct moatd_init_opts o = { .err = err, .errlen = sizeof(err) };

	pathf(root, rootlen, "/tmp/test_identity.XXXXXX");
	assert_non_null(mkdtemp(root));
	pathf(dir, dirlen, "%s/data", root);
	if (moatd_init_dir(dir, &o) != 0)
		fail_msg("moatd_init_dir: %s", err);
}

static int
group_setup(void **state)
{
	char sec[256];
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	make_data_dir(e->root, sizeof(e->root), e->dir, sizeof(e->dir));
	pathf(sec, sizeof(sec), "%s/secrets", e->dir);
	assert_int_equal(keys_open(&e->keys, sec), 0);
	assert_int_equal(identity_store_open_local(e->dir, &e->st), 0);
	e->app.data_dir = e->dir;
	e->app.store = e->st;
	e->app.keys = e->keys;
	e->app.default_org = "default";
	assert_int_equal(identity_new(&e->id, &e->app), 0);
	assert_int_equal(identity_password_hash(PW, e->hash), 0);
	E = e;
	*state = e;
	return 0;
}

static int
group_teardown(void **state)
{
	struct env *e = *state;

	identity_free(e->id);
	store_close(e->st);
	keys_free(e->keys);
	nftw(e->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(e);
	return 0;
}

/* Each test starts with the default cache window. */
static int
test_setup(void **state)
{
	identity_set_cache_ms(E->id, IDENTITY_LIVE_CACHE_MS);
	(void)state;
	return 0;
}

static json_t *
mkuser(const char *name, const char *role)
{
	json_t *u = NULL;
	char err[256] = "";

	if (identity_user_create(E->id, name, E->hash, role, &u, err,
	    sizeof(err)) != 0)
		fail_msg("user_create %s: %s", name, err);
	return u;
}

/* Logs user in (a session) and returns the principal. */
static char *
login(const json_t *user, struct principal *p)
{
	char *jwt = NULL;
	int64_t exp = 0;

	assert_int_equal(identity_session_create(E->id, user, "192.0.2.9", &jwt,
	    &exp), 0);
	assert_non_null(jwt);
	assert_true(exp > time(NULL) + 3600);
	if (p != NULL)
		assert_int_equal(identity_authenticate(E->id, jwt, NULL, p), 0);
	return jwt;
}

static role_mask
R(enum role r)
{
	return 1u << r;
}

/* --- Rules. --- */

static void
test_name_rule(void **state)
{
	static const char *const good[] = {
		"a", "ab", "a1", "a-b", "0", "abcdefghij0123456789", "a-b-c",
		"root9", "systemd",
	};
	static const char *const bad[] = {
		"", "-a", "a-", "a--b", "A", "aB", "a_b", "a.b", "a b",
		"abcdefghij01234567890", "é", "a/b",
	};
	static const char *const reserved[] = {
		"root", "daemon", "www-data", "sshd", "nobody", "messagebus",
		"systemd-network", "systemd-x", "backup", "list",
	};
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(*good); i++)
		if (identity_check_name(good[i], true, err, sizeof(err)) != 0)
			fail_msg("refused good name %s: %s", good[i], err);
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = '\0';
		if (identity_check_name(bad[i], false, err, sizeof(err)) !=
		    MOAT_ERR_INVAL)
			fail_msg("accepted bad name \"%s\"", bad[i]);
		assert_true(strlen(err) > 10);
	}
	for (i = 0; i < sizeof(reserved) / sizeof(*reserved); i++) {
		assert_int_equal(identity_check_name(reserved[i], false, NULL, 0),
		    0);
		assert_int_equal(identity_check_name(reserved[i], true, err,
		    sizeof(err)), MOAT_ERR_INVAL);
		assert_non_null(strstr(err, "reserved"));
	}
	assert_int_equal(identity_check_name("_apt", true, NULL, 0),
	    MOAT_ERR_INVAL);
	assert_int_equal(identity_check_name(NULL, true, NULL, 0),
	    MOAT_ERR_INVAL);
	assert_int_equal(identity_check_name("a--b", false, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	assert_non_null(strstr(err, "--"));
	assert_int_equal(identity_check_name("abcdefghij01234567890", false,
	    err, sizeof(err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(err, "20"));
}

static void
test_password_rules(void **state)
{
	char err[256], big[300];

	(void)state;
	assert_int_equal(identity_check_password(PW, "alice", err,
	    sizeof(err)), 0);
	assert_int_equal(identity_check_password("short-pw-1", "alice", err,
	    sizeof(err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(err, "at least 12"));
	memset(big, 'x', 257);
	big[0] = 'y';
	big[257] = '\0';
	assert_int_equal(identity_check_password(big, "alice", err,
	    sizeof(err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(err, "at most 256"));
	big[256] = '\0';
	assert_int_equal(identity_check_password(big, "alice", err,
	    sizeof(err)), 0);
	assert_int_equal(identity_check_password("my-ALICE-is-fine-9", "alice",
	    err, sizeof(err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(err, "user name"));
	assert_int_equal(identity_check_password("PassWord1234", "bob", err,
	    sizeof(err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(err, "common"));
	assert_int_equal(identity_check_password("aaaaaaaaaaaaaaa", "bob", err,
	    sizeof(err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(err, "repeated"));
	/* Characters, not bytes: 11 two-byte characters are too few. */
	assert_int_equal(identity_check_password(
	    "\xc3\xa9t\xc3\xa9\xc3\xa9t\xc3\xa9\xc3\xa9t\xc3\xa9\xc3\xa9t",
	    "bob", err, sizeof(err)), MOAT_ERR_INVAL);
	assert_int_equal(identity_check_password(
	    "\xc3\xa9t\xc3\xa9\xc3\xa9t\xc3\xa9\xc3\xa9t\xc3\xa9\xc3\xa9tt",
	    "bob", err, sizeof(err)), 0);
	/* A one-letter user name does not ban that letter. */
	assert_int_equal(identity_check_password(PW, "a", err, sizeof(err)),
	    0);
	assert_int_equal(identity_check_password(NULL, "a", err, sizeof(err)),
	    MOAT_ERR_INVAL);
	/* The message never echoes the password. */
	assert_int_equal(identity_check_password("password1234", "bob", err,
	    sizeof(err)), MOAT_ERR_INVAL);
	assert_null(strstr(err, "password1234"));
}

static void
test_hash_roundtrip(void **state)
{
	char h2[128];

	(void)state;
	assert_int_equal(strncmp(E->hash, "$argon2id$", 10), 0);
	assert_null(strstr(E->hash, PW));
	assert_true(identity_password_verify(E->hash, PW));
	assert_false(identity_password_verify(E->hash, PW "x"));
	assert_false(identity_password_verify(E->hash, ""));
	assert_false(identity_password_verify(NULL, PW));
	assert_false(identity_password_verify("$2y$10$notargon", PW));
	assert_false(identity_password_verify("", PW));
	/* Salted: the same password hashes differently. */
	assert_int_equal(identity_password_hash(PW, h2), 0);
	assert_string_not_equal(h2, E->hash);
	assert_true(identity_password_verify(h2, PW));
}

static void
test_bearer_kind(void **state)
{
	const char *tok = "moat_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234";

	(void)state;
	assert_int_equal(strlen(tok), IDENTITY_TOKEN_LEN);
	assert_int_equal(identity__bearer_kind(tok, strlen(tok)),
	    IDENTITY_BEARER_TOKEN);
	assert_int_equal(identity__bearer_kind("moat_short", 10),
	    IDENTITY_BEARER_INVALID);
	assert_int_equal(identity__bearer_kind("aaa.bbb.ccc", 11),
	    IDENTITY_BEARER_JWT);
	assert_int_equal(identity__bearer_kind("aaa.bbb.", 8),
	    IDENTITY_BEARER_INVALID);
	assert_int_equal(identity__bearer_kind("aaa..ccc", 8),
	    IDENTITY_BEARER_INVALID);
	assert_int_equal(identity__bearer_kind("a.b.c.d", 7),
	    IDENTITY_BEARER_INVALID);
	assert_int_equal(identity__bearer_kind("a.b c.d", 7),
	    IDENTITY_BEARER_INVALID);
	assert_int_equal(identity__bearer_kind("", 0), IDENTITY_BEARER_INVALID);
}

/* --- Throttle. --- */

static void
test_throttle(void **state)
{
	int retry = -1, i;

	(void)state;
	for (i = 0; i < IDENTITY_FREE_FAILURES - 1; i++) {
		identity_throttle_report(E->id, "carol", "192.0.2.1", false);
		assert_int_equal(identity_throttle_check(E->id, "carol",
		    "192.0.2.1", &retry), 0);
		assert_int_equal(retry, 0);
	}
	/* The FREE-th failure starts the delay, for any spelling of the
	 * account name. */
	identity_throttle_report(E->id, "Carol", "192.0.2.1", false);
	assert_int_equal(identity_throttle_check(E->id, "carol", "192.0.2.1",
	    &retry), MOAT_ERR_AGAIN);
	assert_int_equal(retry, 1);
	identity_throttle_report(E->id, "carol", "192.0.2.1", false);
	assert_int_equal(identity_throttle_check(E->id, "CAROL", "192.0.2.1",
	    &retry), MOAT_ERR_AGAIN);
	assert_int_equal(retry, 2);
	identity_throttle_report(E->id, "carol", "192.0.2.1", false);
	assert_int_equal(identity_throttle_check(E->id, "carol", "192.0.2.1",
	    &retry), MOAT_ERR_AGAIN);
	assert_int_equal(retry, 4);
	/* Grows to the cap and no further. */
	for (i = 0; i < 30; i++)
		identity_throttle_report(E->id, "carol", "192.0.2.1", false);
	assert_int_equal(identity_throttle_check(E->id, "carol", "192.0.2.1",
	    &retry), MOAT_ERR_AGAIN);
	assert_int_equal(retry, IDENTITY_THROTTLE_MAX_DELAY_S);

	/* Same account elsewhere, another account here: unaffected. */
	assert_int_equal(identity_throttle_check(E->id, "carol", "192.0.2.2",
	    &retry), 0);
	assert_int_equal(identity_throttle_check(E->id, "dave", "192.0.2.1",
	    &retry), 0);

	/* Success clears the pair. */
	identity_throttle_report(E->id, "carol", "192.0.2.1", true);
	assert_int_equal(identity_throttle_check(E->id, "carol", "192.0.2.1",
	    &retry), 0);
	identity_throttle_report(E->id, "carol", "192.0.2.1", false);
	assert_int_equal(identity_throttle_check(E->id, "carol", "192.0.2.1",
	    &retry), 0);

	/* IPv6 counts by /64; IPv4-mapped as IPv4. */
	for (i = 0; i < IDENTITY_FREE_FAILURES; i++)
		identity_throttle_report(E->id, "erin", "2001:db8::1", false);
	assert_int_equal(identity_throttle_check(E->id, "erin",
	    "2001:db8::ffff:2", &retry), MOAT_ERR_AGAIN);
	assert_int_equal(identity_throttle_check(E->id, "erin",
	    "2001:db8:0:1::1", &retry), 0);
	for (i = 0; i < IDENTITY_FREE_FAILURES; i++)
		identity_throttle_report(E->id, "erin", "::ffff:198.51.100.7",
		    false);
	assert_int_equal(identity_throttle_check(E->id, "erin",
	    "198.51.100.7", &retry), MOAT_ERR_AGAIN);
}

/* The table is bounded: churn replaces the least recently seen pairs, and
 * the pairs in use keep being throttled. */
static void
test_throttle_bounded(void **state)
{
	char name[32];
	int retry, i;

	(void)state;
	for (i = 0; i < IDENTITY_FREE_FAILURES; i++)
		identity_throttle_report(E->id, "frank", "192.0.2.50", false);
	assert_int_equal(identity_throttle_check(E->id, "frank", "192.0.2.50",
	    &retry), MOAT_ERR_AGAIN);
	for (i = 0; i < IDENTITY_THROTTLE_SLOTS + 10; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		identity_throttle_report(E->id, name, "203.0.113.1", false);
	}
	/* frank was seen least recently: his row was reused. */
	assert_int_equal(identity_throttle_check(E->id, "frank", "192.0.2.50",
	    &retry), 0);
	for (i = 1; i < IDENTITY_FREE_FAILURES; i++)
		identity_throttle_report(E->id, "u4100", "203.0.113.1", false);
	assert_int_equal(identity_throttle_check(E->id, "u4100", "203.0.113.1",
	    &retry), MOAT_ERR_AGAIN);
}

/* --- Users. --- */

static void
test_user_create(void **state)
{
	json_t *u = NULL, *pub, *again = NULL;
	char err[256];
	role_mask roles = 0;

	(void)state;
	u = mkuser("grace", "member");
	assert_non_null(json_string_value(json_object_get(u, "id")));
	assert_int_equal(identity_user_roles(E->id, json_string_value(
	    json_object_get(u, "id")), &roles), 0);
	assert_int_equal(roles, R(ROLE_MEMBER));
	pub = identity_user_public(u);
	assert_null(json_object_get(pub, "password_hash"));
	assert_null(json_object_get(pub, "sealed"));
	assert_true(json_is_false(json_object_get(pub, "totp_enabled")));
	assert_string_equal(json_string_value(json_object_get(pub, "username")),
	    "grace");
	json_decref(pub);
	assert_int_equal(identity_user_create(E->id, "grace", E->hash,
	    "member", &again, err, sizeof(err)), MOAT_ERR_EXISTS);
	assert_non_null(strstr(err, "exists"));
	assert_null(again);
	assert_int_equal(identity_user_create(E->id, "root", E->hash, "member",
	    &again, err, sizeof(err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(err, "reserved"));
	assert_int_equal(identity_user_create(E->id, "heidi", E->hash, "king",
	    &again, err, sizeof(err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(err, "role"));
	assert_int_equal(identity_user_create(E->id, "heidi", PW, "member",
	    &again, err, sizeof(err)), MOAT_ERR_INVAL);
	assert_int_equal(identity_user_find(E->id, "heidi", &again),
	    MOAT_ERR_NOTFOUND);
	json_decref(u);
}

/* --- Sessions. --- */

static void
test_sessions(void **state)
{
	json_t *u = mkuser("ivan", "template-admin"), *sess = NULL;
	struct principal p, q;
	char *jwt, *bad;
	size_t n;

	(void)state;
	jwt = login(u, &p);
	assert_string_equal(p.username, "ivan");
	assert_string_equal(p.org, "default");
	assert_int_equal(p.roles, R(ROLE_TEMPLATE_ADMIN));
	assert_true(p.session_id[0] != '\0');
	assert_true(p.token_id[0] == '\0');
	/* The cookie carries the same JWT. */
	assert_int_equal(identity_authenticate(E->id, NULL, jwt, &q), 0);
	assert_string_equal(q.session_id, p.session_id);
	/* A tampered signature, a truncated token, garbage, nothing. */
	bad = strdup(jwt);
	n = strlen(bad);
	bad[n - 3] = bad[n - 3] == 'A' ? 'B' : 'A';
	assert_int_equal(identity_authenticate(E->id, bad, NULL, &q),
	    MOAT_ERR_PERM);
	assert_true(q.user_id[0] == '\0');
	bad[n - 10] = '\0';
	assert_int_equal(identity_authenticate(E->id, bad, NULL, &q),
	    MOAT_ERR_PERM);
	free(bad);
	assert_int_equal(identity_authenticate(E->id, "x.y.z", NULL, &q),
	    MOAT_ERR_PERM);
	assert_int_equal(identity_authenticate(E->id, NULL, NULL, &q),
	    MOAT_ERR_PERM);

	/* Revoked in the store by someone else (another moatd, moatd
	 * reset-password): honoured once the cache window passes. */
	identity_set_cache_ms(E->id, 300);
	assert_int_equal(identity_authenticate(E->id, jwt, NULL, &q), 0);
	assert_int_equal(store_get(E->st, COLL_SESSIONS, p.session_id, &sess),
	    0);
	assert_int_equal(json_object_set_new(sess, "revoked", json_true()), 0);
	assert_int_equal(store_update(E->st, COLL_SESSIONS, sess), 0);
	json_decref(sess);
	assert_int_equal(identity_authenticate(E->id, jwt, NULL, &q), 0);
	usleep(400 * 1000);
	assert_int_equal(identity_authenticate(E->id, jwt, NULL, &q),
	    MOAT_ERR_PERM);
	assert_int_equal(identity_authenticate(E->id, NULL, jwt, &q),
	    MOAT_ERR_PERM);
	free(jwt);

	/* Revoked through identity: at once, whatever the window. */
	identity_set_cache_ms(E->id, 60000);
	jwt = login(u, &p);
	assert_int_equal(identity_session_revoke(E->id, p.session_id), 0);
	assert_int_equal(identity_authenticate(E->id, jwt, NULL, &q),
	    MOAT_ERR_PERM);
	assert_int_equal(identity_session_revoke(E->id, "nosuchsession"),
	    MOAT_ERR_NOTFOUND);
	free(jwt);

	/* Roles changed: the next check sees them. */
	jwt = login(u, &p);
	assert_int_equal(identity_user_set_roles(E->id, p.user_id, NULL,
	    R(ROLE_AUDITOR) | R(ROLE_MEMBER)), 0);
	assert_int_equal(identity_authenticate(E->id, jwt, NULL, &q), 0);
	assert_int_equal(q.roles, R(ROLE_AUDITOR) | R(ROLE_MEMBER));
	free(jwt);
	json_decref(u);
}

/* A session whose document expired is refused even with a valid JWT. */
static void
test_session_expired(void **state)
{
	json_t *u = mkuser("judy", "member"), *sess = NULL;
	struct principal p, q;
	char *jwt;

	(void)state;
	identity_set_cache_ms(E->id, 0);
	jwt = login(u, &p);
	assert_int_equal(store_get(E->st, COLL_SESSIONS, p.session_id, &sess),
	    0);
	assert_int_equal(json_object_set_new(sess, "expires_at",
	    json_integer(time(NULL) - 1)), 0);
	assert_int_equal(store_update(E->st, COLL_SESSIONS, sess), 0);
	json_decref(sess);
	assert_int_equal(identity_authenticate(E->id, jwt, NULL, &q),
	    MOAT_ERR_PERM);
	free(jwt);
	/* A new login prunes the expired session document. */
	jwt = login(u, &q);
	assert_int_equal(store_get(E->st, COLL_SESSIONS, p.session_id, &sess),
	    MOAT_ERR_NOTFOUND);
	free(jwt);
	json_decref(u);
}

/* --- Tokens. --- */

/* Token hashes are SHA-256 in lower-case hex (the FIPS 180-2 vectors). */
static void
test_sha256_hex(void **state)
{
	char hex[65];

	(void)state;
	assert_int_equal(sha256_hex("abc", 3, hex), 0);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(sha256_hex("", 0, hex), 0);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");
}

static void
test_tokens(void **state)
{
	json_t *u = mkuser("karl", "admin"), *v = mkuser("lena", "member");
	json_t *doc = NULL, *list = NULL, *t = NULL;
	struct principal p, pv, q;
	role_mask scope;
	char *jwt, *jwtv, *tok = NULL, *tok2 = NULL, *tok3 = NULL, hex[65];
	char fake[IDENTITY_TOKEN_LEN + 1];

	(void)state;
	jwt = login(u, &p);
	jwtv = login(v, &pv);
	assert_int_equal(identity_user_set_roles(E->id, p.user_id, NULL,
	    R(ROLE_ADMIN) | R(ROLE_MEMBER)), 0);
	assert_int_equal(identity_authenticate(E->id, jwt, NULL, &p), 0);

	/* Full token: follows the user's roles. */
	assert_int_equal(identity_token_create(E->id, &p, "laptop", 0, NULL,
	    &tok, &doc), 0);
	assert_int_equal(strlen(tok), IDENTITY_TOKEN_LEN);
	assert_int_equal(strncmp(tok, "moat_", 5), 0);
	assert_null(json_object_get(doc, "hash"));
	assert_string_equal(json_string_value(json_object_get(doc, "name")),
	    "laptop");
	/* Stored as the SHA-256 of the whole string, never in clear. */
	assert_int_equal(store_get(E->st, COLL_TOKENS, json_string_value(
	    json_object_get(doc, "id")), &t), 0);
	assert_int_equal(sha256_hex(tok, strlen(tok), hex), 0);
	assert_string_equal(json_string_value(json_object_get(t, "hash")), hex);
	{
		char *dump = json_dumps(t, 0);

		assert_non_null(dump);
		assert_null(strstr(dump, tok + 5));
		free(dump);
	}
	json_decref(t);
	assert_int_equal(identity_authenticate(E->id, tok, NULL, &q), 0);
	assert_string_equal(q.username, "karl");
	assert_int_equal(q.roles, R(ROLE_ADMIN) | R(ROLE_MEMBER));
	assert_string_equal(q.token_id, json_string_value(json_object_get(doc,
	    "id")));
	assert_true(q.session_id[0] == '\0');
	/* A token is never accepted as a cookie. */
	assert_int_equal(identity_authenticate(E->id, NULL, tok, &q),
	    MOAT_ERR_PERM);

	/* Narrower scope. */
	scope = R(ROLE_MEMBER);
	assert_int_equal(identity_token_create(E->id, &p, "ci", 3600, &scope,
	    &tok2, NULL), 0);
	assert_int_equal(identity_authenticate(E->id, tok2, NULL, &q), 0);
	assert_int_equal(q.roles, R(ROLE_MEMBER));
	/* A token made with that token cannot widen it back. */
	assert_int_equal(identity_token_create(E->id, &q, "ci-child", 0, NULL,
	    &tok3, NULL), 0);
	assert_int_equal(identity_authenticate(E->id, tok3, NULL, &q), 0);
	assert_int_equal(q.roles, R(ROLE_MEMBER));
	free(tok3);
	tok3 = NULL;
	scope = R(ROLE_ADMIN);
	assert_int_equal(identity_token_create(E->id, &q, "ci-wide", 0, &scope,
	    &tok3, NULL), MOAT_ERR_PERM);
	/* Never beyond the creator's roles. */
	scope = R(ROLE_OWNER);
	assert_int_equal(identity_token_create(E->id, &p, "owner", 0, &scope,
	    &tok3, NULL), MOAT_ERR_PERM);
	assert_null(tok3);
	/* Names: the name rule, unique among live tokens. */
	assert_int_equal(identity_token_create(E->id, &p, "laptop", 0, NULL,
	    &tok3, NULL), MOAT_ERR_EXISTS);
	assert_int_equal(identity_token_create(E->id, &p, "Bad Name", 0, NULL,
	    &tok3, NULL), MOAT_ERR_INVAL);
	assert_int_equal(identity_token_create(E->id, &p, "neg", -5, NULL,
	    &tok3, NULL), MOAT_ERR_INVAL);

	/* Lists: own ones; others' only with users:read. */
	assert_int_equal(identity_token_list(E->id, &p, NULL, &list), 0);
	assert_int_equal(json_array_size(list), 3);
	assert_null(json_object_get(json_array_get(list, 0), "hash"));
	json_decref(list);
	assert_int_equal(identity_token_list(E->id, &pv, p.user_id, &list),
	    MOAT_ERR_PERM);
	assert_int_equal(identity_token_list(E->id, &p, pv.user_id, &list), 0);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);

	/* Revoke: not someone else's (not even visible), then refused. */
	assert_int_equal(identity_token_revoke(E->id, &pv, json_string_value(
	    json_object_get(doc, "id"))), MOAT_ERR_NOTFOUND);
	assert_int_equal(identity_authenticate(E->id, tok, NULL, &q), 0);
	assert_int_equal(identity_token_revoke(E->id, &p, json_string_value(
	    json_object_get(doc, "id"))), 0);
	assert_int_equal(identity_authenticate(E->id, tok, NULL, &q),
	    MOAT_ERR_PERM);
	/* The name is free again once revoked. */
	assert_int_equal(identity_token_create(E->id, &p, "laptop", 0, NULL,
	    &tok3, NULL), 0);
	free(tok3);
	tok3 = NULL;
	/* An admin may revoke anyone's. */
	assert_int_equal(identity_token_create(E->id, &pv, "lena-cli", 0, NULL,
	    &tok3, &t), 0);
	assert_int_equal(identity_authenticate(E->id, tok3, NULL, &q), 0);
	assert_int_equal(identity_token_revoke(E->id, &p, json_string_value(
	    json_object_get(t, "id"))), 0);
	assert_int_equal(identity_authenticate(E->id, tok3, NULL, &q),
	    MOAT_ERR_PERM);
	json_decref(t);
	t = NULL;

	/* Expired: refused. */
	identity_set_cache_ms(E->id, 0);
	assert_int_equal(identity_authenticate(E->id, tok2, NULL, &q), 0);
	assert_int_equal(store_find_one(E->st, COLL_TOKENS, "name", "ci", &t),
	    MOAT_ERR_INVAL);	/* not an index: a real lookup goes by hash */
	assert_int_equal(sha256_hex(tok2, strlen(tok2), hex), 0);
	assert_int_equal(store_find_one(E->st, COLL_TOKENS, "hash", hex, &t), 0);
	assert_true(json_integer_value(json_object_get(t, "expires_at")) >
	    time(NULL) + 3500);
	assert_int_equal(json_object_set_new(t, "expires_at",
	    json_integer(time(NULL) - 1)), 0);
	assert_int_equal(store_update(E->st, COLL_TOKENS, t), 0);
	json_decref(t);
	assert_int_equal(identity_authenticate(E->id, tok2, NULL, &q),
	    MOAT_ERR_PERM);

	/* Well-formed but unknown. */
	memcpy(fake, tok, sizeof(fake));
	fake[10] = fake[10] == 'a' ? 'b' : 'a';
	assert_int_equal(identity_authenticate(E->id, fake, NULL, &q),
	    MOAT_ERR_PERM);

	free(tok);
	free(tok2);
	free(tok3);
	free(jwt);
	free(jwtv);
	json_decref(doc);
	json_decref(u);
	json_decref(v);
}

/* --- Disabling. --- */

static void
test_disable(void **state)
{
	json_t *u = mkuser("mallory", "admin"), *list = NULL, *d;
	struct principal p, q;
	char *jwt, *jwt2, *tok = NULL;
	size_t i;

	(void)state;
	/* A long window: disabling must not wait for it. */
	identity_set_cache_ms(E->id, 60000);
	jwt = login(u, &p);
	jwt2 = login(u, NULL);
	assert_int_equal(identity_token_create(E->id, &p, "auto", 0, NULL, &tok,
	    NULL), 0);
	assert_int_equal(identity_authenticate(E->id, tok, NULL, &q), 0);
	assert_int_equal(identity_authenticate(E->id, jwt2, NULL, &q), 0);

	assert_int_equal(identity_user_set_disabled(E->id, p.user_id, true), 0);
	assert_int_equal(identity_authenticate(E->id, jwt, NULL, &q),
	    MOAT_ERR_PERM);
	assert_int_equal(identity_authenticate(E->id, jwt2, NULL, &q),
	    MOAT_ERR_PERM);
	assert_int_equal(identity_authenticate(E->id, NULL, jwt, &q),
	    MOAT_ERR_PERM);
	assert_int_equal(identity_authenticate(E->id, tok, NULL, &q),
	    MOAT_ERR_PERM);
	/* Every session and token is revoked in the store. */
	assert_int_equal(store_list(E->st, COLL_SESSIONS, "user_id", p.user_id,
	    NULL, 0, &list), 0);
	assert_true(json_array_size(list) >= 2);
	json_array_foreach(list, i, d)
		assert_true(json_is_true(json_object_get(d, "revoked")));
	json_decref(list);
	assert_int_equal(store_list(E->st, COLL_TOKENS, "user_id", p.user_id,
	    NULL, 0, &list), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_true(json_is_true(json_object_get(json_array_get(list, 0),
	    "revoked")));
	json_decref(list);
	/* No new session either. */
	json_decref(u);
	assert_int_equal(identity_user_get(E->id, p.user_id, &u), 0);
	free(jwt);
	assert_int_equal(identity_session_create(E->id, u, "192.0.2.9", &jwt,
	    NULL), MOAT_ERR_PERM);
	assert_null(jwt);

	/* Enabled again: old credentials stay dead, a new login works. */
	assert_int_equal(identity_user_set_disabled(E->id, p.user_id, false),
	    0);
	assert_int_equal(identity_authenticate(E->id, tok, NULL, &q),
	    MOAT_ERR_PERM);
	json_decref(u);
	assert_int_equal(identity_user_get(E->id, p.user_id, &u), 0);
	jwt = login(u, &q);
	free(jwt);
	free(jwt2);
	free(tok);
	json_decref(u);
	assert_int_equal(identity_user_set_disabled(E->id, "nosuchuser", true),
	    MOAT_ERR_NOTFOUND);
}

/* --- Threads. --- */

struct hammer {
	const char *cred;
	int fails;
};

static void *
hammer_run(void *arg)
{
	struct hammer *h = arg;
	struct principal q;
	int i;

	for (i = 0; i < 300; i++)
		if (identity_authenticate(E->id, h->cred, NULL, &q) != 0 ||
		    strcmp(q.username, "trent") != 0)
			h->fails++;
	return NULL;
}

/* Many workers authenticate at once (hits, misses, full checks against
 * the store) while roles change underneath. */
static void
test_concurrent_authenticate(void **state)
{
	json_t *u = mkuser("trent", "member");
	struct principal p;
	struct hammer h[4];
	pthread_t th[4];
	char *jwt, *tok = NULL;
	int i;

	(void)state;
	jwt = login(u, &p);
	assert_int_equal(identity_token_create(E->id, &p, "hammer", 0, NULL,
	    &tok, NULL), 0);
	identity_set_cache_ms(E->id, 5);
	for (i = 0; i < 4; i++) {
		h[i].cred = i % 2 == 0 ? jwt : tok;
		h[i].fails = 0;
		assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &h[i]),
		    0);
	}
	for (i = 0; i < 20; i++) {
		assert_int_equal(identity_user_set_roles(E->id, p.user_id, NULL,
		    i % 2 ? R(ROLE_MEMBER) : R(ROLE_MEMBER) | R(ROLE_AUDITOR)),
		    0);
		usleep(2000);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(h[i].fails, 0);
	}
	free(jwt);
	free(tok);
	json_decref(u);
}

/* --- TOTP. --- */

/* The current code (offset steps from now) for the seed in uri. */
static void
totp_code(const char *uri, int offset, char code[7])
{
	const char *s = strstr(uri, "secret="), *e;
	char b32[128], *seed = NULL;
	size_t seedlen = 0;

	assert_non_null(s);
	s += 7;
	e = strchr(s, '&');
	assert_non_null(e);
	assert_true((size_t)(e - s) < sizeof(b32));
	memcpy(b32, s, (size_t)(e - s));
	b32[e - s] = '\0';
	assert_int_equal(oath_base32_decode(b32, strlen(b32), &seed, &seedlen),
	    OATH_OK);
	assert_int_equal(seedlen, 20);
	assert_int_equal(oath_totp_generate(seed, seedlen, time(NULL) +
	    offset * 30, 30, 0, 6, code), OATH_OK);
	free(seed);
}

static void
test_totp(void **state)
{
	json_t *u = mkuser("niaj", "member"), *fresh = NULL;
	char *uri = NULL, *uri2 = NULL, code[7], wrong[7], *dump;
	const char *uid = json_string_value(json_object_get(u, "id"));

	(void)state;
	assert_false(identity_totp_enabled(u));
	assert_int_equal(identity_totp_verify(E->id, u, "123456"),
	    MOAT_ERR_NOTFOUND);
	assert_int_equal(identity_totp_enroll(E->id, uid, &uri), 0);
	assert_int_equal(strncmp(uri, "otpauth://totp/moat:niaj?secret=", 32),
	    0);
	assert_non_null(strstr(uri, "&issuer=moat&algorithm=SHA1&digits=6"
	    "&period=30"));
	/* Pending: sealed, not yet enabled. */
	assert_int_equal(identity_user_get(E->id, uid, &fresh), 0);
	assert_false(identity_totp_enabled(fresh));
	assert_int_equal(strncmp(json_string_value(json_object_get(
	    json_object_get(fresh, "sealed"), "totp_pending")), "v1.", 3), 0);
	dump = json_dumps(fresh, 0);
	totp_code(uri, 0, code);
	{
		/* The base32 seed is nowhere in the stored document. */
		char b32[33];

		memcpy(b32, strstr(uri, "secret=") + 7, 32);
		b32[32] = '\0';
		assert_null(strstr(dump, b32));
	}
	free(dump);

	/* A wrong code, a malformed one: refused, still pending. */
	memcpy(wrong, code, 7);
	wrong[0] = wrong[0] == '9' ? '0' : (char)(wrong[0] + 1);
	assert_int_equal(identity_totp_verify(E->id, fresh, wrong),
	    MOAT_ERR_PERM);
	assert_int_equal(identity_totp_verify(E->id, fresh, "12345"),
	    MOAT_ERR_PERM);
	assert_int_equal(identity_totp_verify(E->id, fresh, "12a456"),
	    MOAT_ERR_PERM);
	/* The first valid code confirms the enrollment. */
	assert_int_equal(identity_totp_verify(E->id, fresh, code), 0);
	json_decref(fresh);
	assert_int_equal(identity_user_get(E->id, uid, &fresh), 0);
	assert_true(identity_totp_enabled(fresh));
	assert_null(json_object_get(json_object_get(fresh, "sealed"),
	    "totp_pending"));
	/* The same code cannot be used twice. */
	assert_int_equal(identity_totp_verify(E->id, fresh, code),
	    MOAT_ERR_PERM);
	/* The next step's code (one step of drift) is fine once. */
	totp_code(uri, 1, code);
	assert_int_equal(identity_totp_verify(E->id, fresh, code), 0);
	assert_int_equal(identity_totp_verify(E->id, fresh, code),
	    MOAT_ERR_PERM);
	/* Three steps away: refused. */
	totp_code(uri, 3, code);
	assert_int_equal(identity_totp_verify(E->id, fresh, code),
	    MOAT_ERR_PERM);
	/* Enrolled: no second enrollment until disabled. */
	assert_int_equal(identity_totp_enroll(E->id, uid, &uri2),
	    MOAT_ERR_EXISTS);
	assert_null(uri2);
	assert_int_equal(identity_totp_disable(E->id, uid), 0);
	json_decref(fresh);
	assert_int_equal(identity_user_get(E->id, uid, &fresh), 0);
	assert_false(identity_totp_enabled(fresh));
	assert_null(json_object_get(fresh, "sealed"));
	free(uri);
	json_decref(fresh);
	json_decref(u);
}

/* A sealed seed copied to another user does not open there. */
static void
test_totp_moved_seed(void **state)
{
	json_t *a = mkuser("olivia", "member"), *b = mkuser("peggy", "member");
	json_t *fa = NULL, *fb = NULL;
	char *uri = NULL, code[7];
	const char *ida = json_string_value(json_object_get(a, "id"));
	const char *idb = json_string_value(json_object_get(b, "id"));

	(void)state;
	assert_int_equal(identity_totp_enroll(E->id, ida, &uri), 0);
	assert_int_equal(identity_user_get(E->id, ida, &fa), 0);
	assert_int_equal(identity_user_get(E->id, idb, &fb), 0);
	assert_int_equal(json_object_set(fb, "sealed", json_object_get(fa,
	    "sealed")), 0);
	assert_int_equal(store_update(E->st, COLL_USERS, fb), 0);
	totp_code(uri, 0, code);
	assert_int_not_equal(identity_totp_verify(E->id, fb, code), 0);
	assert_int_equal(identity_totp_verify(E->id, fa, code), 0);
	free(uri);
	json_decref(fa);
	json_decref(fb);
	json_decref(a);
	json_decref(b);
}

/* --- Bootstrap and reset-password. --- */

static char *
read_file(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	char *p;
	size_t n;

	assert_non_null(f);
	p = calloc(1, 4 << 20);
	assert_non_null(p);
	n = fread(p, 1, (4 << 20) - 1, f);
	fclose(f);
	if (lenp != NULL)
		*lenp = n;
	return p;
}

static bool
file_contains(const char *path, const char *needle)
{
	size_t n;
	char *data = read_file(path, &n);
	bool found = memmem(data, n, needle, strlen(needle)) != NULL;

	free(data);
	return found;
}

static void
test_bootstrap_and_reset(void **state)
{
	char root[64], dir[128], path[256], sec[256], pw[32], pw2[32], err[256];
	char *content, *jwt, *uri = NULL, code[7];
	struct keys *keys = NULL;
	struct store *st = NULL;
	struct identity *id = NULL;
	struct app app = { .default_org = "default" };
	struct audit_verify_result res;
	struct principal p, q;
	json_t *admin = NULL, *pol = NULL, *set = NULL, *norm = NULL;
	struct stat sb;
	char jpath[64], jerr[128];
	role_mask roles;

	(void)state;
	make_data_dir(root, sizeof(root), dir, sizeof(dir));
	assert_int_equal(identity_bootstrap(dir, pw, sizeof(pw)), 0);
	assert_int_equal(strlen(pw), IDENTITY_GENERATED_PASSWORD_LEN);
	assert_null(strpbrk(pw, "0O1lI"));
	pathf(path, sizeof(path), "%s/initial-admin-password", dir);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);
	content = read_file(path, NULL);
	assert_int_equal(strncmp(content, pw, strlen(pw)), 0);
	assert_string_equal(content + strlen(pw), "\n");
	free(content);
	/* Again: the admin is kept, the password too. */
	assert_int_equal(identity_bootstrap(dir, pw2, sizeof(pw2)),
	    MOAT_ERR_EXISTS);
	assert_string_equal(pw2, "");
	assert_int_equal(identity_bootstrap(dir, pw2, 5), MOAT_ERR_INVAL);

	pathf(sec, sizeof(sec), "%s/secrets", dir);
	assert_int_equal(keys_open(&keys, sec), 0);
	assert_int_equal(identity_store_open_local(dir, &st), 0);
	app.store = st;
	app.keys = keys;
	assert_int_equal(identity_new(&id, &app), 0);
	identity_set_cache_ms(id, 0);

	/* The admin logs in with the printed password, as owner. */
	assert_int_equal(identity_user_find(id, "admin", &admin), 0);
	assert_true(identity_password_verify(json_string_value(json_object_get(
	    admin, "password_hash")), pw));
	assert_int_equal(identity_session_create(id, admin, "127.0.0.1", &jwt,
	    NULL), 0);
	assert_int_equal(identity_authenticate(id, jwt, NULL, &p), 0);
	assert_int_equal(p.roles, R(ROLE_OWNER));
	assert_string_equal(p.username, "admin");
	/* Organization, policy (valid, allowing nothing) and settings. */
	assert_int_equal(store_get(st, COLL_ORGS, "default", &pol), 0);
	json_decref(pol);
	assert_int_equal(store_get(st, COLL_POLICIES, "default", &pol), 0);
	assert_int_equal(json_array_size(json_object_get(pol, "allow")), 0);
	assert_string_equal(json_string_value(json_object_get(pol, "mode")),
	    "enforce");
	{
		json_t *bare = json_pack("{s:O, s:O, s:O, s:O}", "name",
		    json_object_get(pol, "name"), "mode", json_object_get(pol,
		    "mode"), "allow", json_object_get(pol, "allow"), "deny",
		    json_object_get(pol, "deny"));

		assert_int_equal(policy_normalize(bare, &norm, jpath,
		    sizeof(jpath), jerr, sizeof(jerr)), 0);
		json_decref(bare);
		json_decref(norm);
	}
	assert_int_equal(store_get(st, COLL_SETTINGS, "default", &set), 0);
	assert_string_equal(json_string_value(json_object_get(set,
	    "default_policy")), "default");
	/* The base template, and "localhost" (only) allowed for it. */
	{
		json_t *tpl = NULL, *regs = json_object_get(set, "registries");

		assert_int_equal(json_array_size(regs), 1);
		assert_string_equal(json_string_value(json_array_get(regs, 0)),
		    "localhost");
		assert_int_equal(store_find_one(st, COLL_TEMPLATES, "name",
		    "base", &tpl), 0);
		assert_string_equal(json_string_value(json_object_get(tpl,
		    "image")), "localhost/moat/base:latest");
		assert_string_equal(json_string_value(json_object_get(tpl,
		    "org")), "default");
		assert_int_equal(json_integer_value(json_object_get(tpl,
		    "cpu")), 2000);
		assert_true(json_is_null(json_object_get(tpl, "egress_policy")));
		/* Deleted, then init again: back, "localhost" not repeated. */
		assert_int_equal(store_delete(st, COLL_TEMPLATES,
		    json_string_value(json_object_get(tpl, "id")), -1), 0);
		json_decref(tpl);
		tpl = NULL;
		assert_int_equal(identity_bootstrap(dir, pw2, sizeof(pw2)),
		    MOAT_ERR_EXISTS);
		assert_int_equal(store_find_one(st, COLL_TEMPLATES, "name",
		    "base", &tpl), 0);
		json_decref(tpl);
		json_decref(set);
		assert_int_equal(store_get(st, COLL_SETTINGS, "default", &set),
		    0);
		assert_int_equal(json_array_size(json_object_get(set,
		    "registries")), 1);
	}
	/* The password is in no file but its own. */
	pathf(path, sizeof(path), "%s/moatd.db", dir);
	assert_false(file_contains(path, pw));
	pathf(path, sizeof(path), "%s/audit/audit.log", dir);
	assert_false(file_contains(path, pw));
	assert_true(file_contains(path, "\"user.create\""));
	assert_true(file_contains(path, "\"template.create\""));

	/* TOTP on, then the break-glass reset. */
	assert_int_equal(identity_totp_enroll(id, p.user_id, &uri), 0);
	json_decref(admin);
	assert_int_equal(identity_user_get(id, p.user_id, &admin), 0);
	totp_code(uri, 0, code);
	assert_int_equal(identity_totp_verify(id, admin, code), 0);
	free(uri);
	json_decref(admin);
	assert_int_equal(identity_user_get(id, p.user_id, &admin), 0);
	assert_true(identity_totp_enabled(admin));
	json_decref(admin);

	assert_int_equal(identity_reset_password(dir, "nobody-here", pw2,
	    sizeof(pw2), err, sizeof(err)), MOAT_ERR_NOTFOUND);
	assert_non_null(strstr(err, "no user"));
	assert_int_equal(identity_reset_password(dir, "admin", pw2,
	    sizeof(pw2), err, sizeof(err)), 0);
	assert_int_equal(strlen(pw2), IDENTITY_GENERATED_PASSWORD_LEN);
	assert_string_not_equal(pw, pw2);
	assert_int_equal(identity_user_find(id, "admin", &admin), 0);
	assert_false(identity_password_verify(json_string_value(
	    json_object_get(admin, "password_hash")), pw));
	assert_true(identity_password_verify(json_string_value(
	    json_object_get(admin, "password_hash")), pw2));
	assert_false(identity_totp_enabled(admin));
	assert_null(json_object_get(admin, "sealed"));
	/* The old session is over. */
	assert_int_equal(identity_authenticate(id, jwt, NULL, &q),
	    MOAT_ERR_PERM);
	assert_int_equal(identity_user_roles(id, p.user_id, &roles), 0);
	assert_int_equal(roles, R(ROLE_OWNER));
	/* Audited, in a chain that verifies. */
	assert_true(file_contains(path, "\"user.password_reset\""));
	assert_false(file_contains(path, pw2));
	assert_int_equal(audit_verify_file(path, NULL, &res), 0);
	assert_true(res.ok);

	/* With moatd running, the event goes through its collector. */
	{
		struct audit_writer *w = NULL;
		struct audit_writer_opts ao = { 0 };
		char sock[256], key[256], pw3[32];
		uint64_t before;

		pathf(sock, sizeof(sock), "%s/run", dir);
		assert_true(mkdir(sock, 0700) == 0 || errno == EEXIST);
		pathf(sock, sizeof(sock), "%s/run/audit.sock", dir);
		pathf(key, sizeof(key), "%s/secrets/audit-signing.pem", dir);
		ao.path = path;
		ao.checkpoint_key_file = key;
		ao.key_id = "test";
		ao.fsync_policy = AUDIT_FSYNC_NONE;
		ao.collector_path = sock;
		ao.process_name = "moatd";
		assert_int_equal(audit_writer_open(&w, &ao), 0);
		before = audit_writer_written(w);
		assert_int_equal(identity_reset_password(dir, "admin", pw3,
		    sizeof(pw3), err, sizeof(err)), 0);
		for (int i = 0; i < 200 && audit_writer_written(w) == before;
		    i++)
			usleep(10 * 1000);
		assert_true(audit_writer_written(w) > before);
		assert_int_equal(audit_writer_flush(w), 0);
		audit_writer_close(w);
		assert_int_equal(audit_verify_file(path, NULL, &res), 0);
	}

	/* The command's argument handling. */
	{
		char *a1[] = { "reset-password", NULL };
		char *a2[] = { "reset-password", "admin", "--bogus", NULL };
		char *a3[] = { "reset-password", "admin", "--data-dir", NULL };
		char *a4[] = { "reset-password", "ghost", "--data-dir", dir,
		    NULL };

		assert_int_equal(moatd_reset_password_main(1, a1), 2);
		assert_int_equal(moatd_reset_password_main(3, a2), 2);
		assert_int_equal(moatd_reset_password_main(3, a3), 2);
		assert_int_equal(moatd_reset_password_main(4, a4), 1);
	}

	free(jwt);
	json_decref(admin);
	json_decref(pol);
	json_decref(set);
	identity_free(id);
	store_close(st);
	keys_free(keys);
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A stale password file or a symbolic link in its place is replaced,
 * never followed. */
static void
test_bootstrap_symlink(void **state)
{
	char root[64], dir[128], path[256], target[256], pw[32];
	struct stat sb;

	(void)state;
	make_data_dir(root, sizeof(root), dir, sizeof(dir));
	pathf(target, sizeof(target), "%s/elsewhere", root);
	pathf(path, sizeof(path), "%s/initial-admin-password", dir);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(identity_bootstrap(dir, pw, sizeof(pw)), 0);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(stat(target, &sb), -1);
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_rule),
		cmocka_unit_test(test_password_rules),
		cmocka_unit_test(test_hash_roundtrip),
		cmocka_unit_test(test_sha256_hex),
		cmocka_unit_test(test_bearer_kind),
		cmocka_unit_test_setup(test_throttle, test_setup),
		cmocka_unit_test_setup(test_throttle_bounded, test_setup),
		cmocka_unit_test_setup(test_user_create, test_setup),
		cmocka_unit_test_setup(test_sessions, test_setup),
		cmocka_unit_test_setup(test_session_expired, test_setup),
		cmocka_unit_test_setup(test_tokens, test_setup),
		cmocka_unit_test_setup(test_disable, test_setup),
		cmocka_unit_test_setup(test_concurrent_authenticate, test_setup),
		cmocka_unit_test_setup(test_totp, test_setup),
		cmocka_unit_test_setup(test_totp_moved_seed, test_setup),
		cmocka_unit_test(test_bootstrap_and_reset),
		cmocka_unit_test(test_bootstrap_symlink),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
