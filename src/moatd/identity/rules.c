/*
 * rules.c - the pure parts of identity: the name rule (DESIGN.md section
 * 3), password rules, argon2id hashing through libsodium, random
 * passwords, and the shape check of bearer values. Nothing here touches
 * the store, so these functions are cheap to test and to fuzz.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <liboath/oath.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "identity/identity_int.h"
#include "identity/jwt.h"
#include "log.h"

#define NAME_MAX_LEN 20
#define PASSWORD_MIN 12
#define PASSWORD_MAX 256

/* System accounts of a Debian image (DESIGN.md section 3); "systemd-*" is
 * matched as a prefix below. "_apt" can never pass the character rule but
 * is listed so the list reads as the design's. */
static const char *const reserved_names[] = {
	"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail",
	"news", "uucp", "proxy", "www-data", "backup", "list", "irc", "gnats",
	"nobody", "sshd", "messagebus", "_apt",
};

/* Passwords of 12 or more characters that top the public breach lists,
 * compared case-insensitively. Length is the main rule (NIST SP 800-63B);
 * this list only stops the most obvious choices. */
static const char *const common_passwords[] = {
	"123456789012", "1234567890123", "12345678901234", "123456789000",
	"1234567890qwerty", "111111111111", "000000000000", "123123123123",
	"qwertyuiopasdfghjkl", "qwertyuiop123", "qwertyuiopas", "qwerty123456",
	"1q2w3e4r5t6y", "1qaz2wsx3edc", "1qaz2wsx3edc4rfv", "zaq12wsxcde3",
	"password1234", "password12345", "password123456", "passw0rd1234",
	"passwordpassword", "password1!", "p@ssw0rd1234", "p@ssword1234",
	"iloveyou1234", "letmein12345", "welcome12345", "welcome123456",
	"administrator", "administrator1", "admin1234567", "adminadmin123",
	"changeme1234", "changeme123!", "trustno1trustno1", "football1234",
	"baseball1234", "superman1234", "sunshine1234", "princess1234",
	"abcdefghijkl", "abcdefghijklmnop", "abc123abc123", "aaaaaa111111",
	"asdfghjkl123", "asdfasdfasdf", "qwerasdfzxcv", "zxcvbnm12345",
	"monkey123456", "dragon123456", "master123456", "moatmoatmoat",
	"correcthorsebatterystaple", "thequickbrownfox",
};

/* No 0/O/o, 1/l/I: easy to read off a terminal and type. */
static const char password_alphabet[] =
    "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_status;

static void
global_init_once(void)
{
	if (sodium_init() < 0) {
		global_status = MOAT_ERR_CRYPTO;
		return;
	}
	if (oath_init() != OATH_OK) {
		global_status = MOAT_ERR_CRYPTO;
		return;
	}
	global_status = 0;
}

int
identity__global_init(void)
{
	if (pthread_once(&global_once, global_init_once) != 0)
		return MOAT_ERR_INVAL;
	return global_status;
}

int64_t
identity__now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

int64_t
identity__mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
identity__random(void *out, size_t n)
{
	if (n > (size_t)INT32_MAX)
		return MOAT_ERR_INVAL;
	return RAND_bytes(out, (int)n) == 1 ? 0 : MOAT_ERR_CRYPTO;
}

int
identity__copy(char *out, size_t outlen, const char *s)
{
	size_t n = strlen(s);

	if (outlen == 0)
		return MOAT_ERR_TOOBIG;
	if (n >= outlen) {
		out[0] = '\0';
		return MOAT_ERR_TOOBIG;
	}
	memcpy(out, s, n + 1);
	return 0;
}

int
identity__random_password(char *out, size_t len)
{
	const size_t alen = sizeof(password_alphabet) - 1;
	/* Rejection sampling: bytes at or above the largest multiple of the
	 * alphabet size are dropped, so every character is equally likely. */
	const unsigned limit = 256 - (256 % alen);
	unsigned char rnd[64];
	size_t got = 0, i;
	int r = 0;

	while (got < len) {
		if ((r = identity__random(rnd, sizeof(rnd))) != 0)
			break;
		for (i = 0; i < sizeof(rnd) && got < len; i++)
			if (rnd[i] < limit)
				out[got++] = password_alphabet[rnd[i] % alen];
	}
	sodium_memzero(rnd, sizeof(rnd));
	if (r != 0) {
		sodium_memzero(out, len);
		out[0] = '\0';
		return r;
	}
	out[len] = '\0';
	return 0;
}

static bool
is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int
identity_check_name(const char *name, bool reserved, char *err, size_t errlen)
{
	size_t n, i;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (name == NULL || name[0] == '\0') {
		moat_errf(err, errlen, "a name must not be empty");
		return MOAT_ERR_INVAL;
	}
	n = strnlen(name, NAME_MAX_LEN + 1);
	if (n > NAME_MAX_LEN) {
		moat_errf(err, errlen, "a name must be at most %d characters",
		    NAME_MAX_LEN);
		return MOAT_ERR_INVAL;
	}
	for (i = 0; i < n; i++) {
		if (!is_name_char(name[i])) {
			moat_errf(err, errlen, "a name may contain only lower-case "
			    "letters a-z, digits and '-' (character %zu is not "
			    "one)", i + 1);
			return MOAT_ERR_INVAL;
		}
	}
	if (name[0] == '-' || name[n - 1] == '-') {
		moat_errf(err, errlen, "a name must start and end with a letter "
		    "or a digit");
		return MOAT_ERR_INVAL;
	}
	if (strstr(name, "--") != NULL) {
		moat_errf(err, errlen, "a name must not contain \"--\" (it "
		    "separates the parts of an app host name)");
		return MOAT_ERR_INVAL;
	}
	if (!reserved)
		return 0;
	if (strncmp(name, "systemd-", 8) == 0) {
		moat_errf(err, errlen, "names starting with \"systemd-\" are "
		    "reserved for system accounts");
		return MOAT_ERR_INVAL;
	}
	for (i = 0; i < sizeof(reserved_names) / sizeof(reserved_names[0]);
	    i++) {
		if (strcmp(name, reserved_names[i]) == 0) {
			moat_errf(err, errlen, "\"%s\" is reserved for a system "
			    "account", reserved_names[i]);
			return MOAT_ERR_INVAL;
		}
	}
	return 0;
}

int
identity_check_password(const char *password, const char *username,
    char *err, size_t errlen)
{
	size_t n, i, chars = 0;
	bool same = true;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (password == NULL) {
		moat_errf(err, errlen, "a password is required");
		return MOAT_ERR_INVAL;
	}
	n = strnlen(password, PASSWORD_MAX + 1);
	if (n > PASSWORD_MAX) {
		moat_errf(err, errlen, "a password must be at most %d bytes long",
		    PASSWORD_MAX);
		return MOAT_ERR_INVAL;
	}
	/* Count characters, not bytes, for the minimum: UTF-8 continuation
	 * bytes (10xxxxxx) do not start a character. */
	for (i = 0; i < n; i++)
		if (((unsigned char)password[i] & 0xc0) != 0x80)
			chars++;
	if (chars < PASSWORD_MIN) {
		moat_errf(err, errlen, "a password must be at least %d characters "
		    "long", PASSWORD_MIN);
		return MOAT_ERR_INVAL;
	}
	for (i = 1; i < n; i++)
		if (password[i] != password[0])
			same = false;
	if (same) {
		moat_errf(err, errlen, "a password must not be one character "
		    "repeated");
		return MOAT_ERR_INVAL;
	}
	if (username != NULL && strlen(username) >= 3 &&
	    strcasestr(password, username) != NULL) {
		moat_errf(err, errlen, "a password must not contain the user "
		    "name");
		return MOAT_ERR_INVAL;
	}
	for (i = 0; i < sizeof(common_passwords) / sizeof(common_passwords[0]);
	    i++) {
		if (strcasecmp(password, common_passwords[i]) == 0) {
			moat_errf(err, errlen, "this password is one of the most "
			    "common ones; choose another");
			return MOAT_ERR_INVAL;
		}
	}
	return 0;
}

int
identity_password_hash(const char *password, char out[128])
{
	_Static_assert(crypto_pwhash_STRBYTES == 128, "argon2id string size");
	int r;

	if (password == NULL || out == NULL)
		return MOAT_ERR_INVAL;
	if ((r = identity__global_init()) != 0)
		return r;
	if (crypto_pwhash_str(out, password, strlen(password),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		/* Out of memory is the only documented cause. */
		log_warn(IDENTITY_COMPONENT, "argon2id hashing failed");
		return MOAT_ERR_NOMEM;
	}
	return 0;
}

/* A hash of nothing anyone knows, made on first use, so that checking a
 * password of an unknown user costs what checking a real one costs. */
static char dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void
dummy_hash_once(void)
{
	unsigned char rnd[32];
	char pw[65];

	if (identity__random(rnd, sizeof(rnd)) != 0)
		return;
	sodium_bin2hex(pw, sizeof(pw), rnd, sizeof(rnd));
	if (identity_password_hash(pw, dummy_hash) != 0)
		dummy_hash[0] = '\0';
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(rnd, sizeof(rnd));
}

bool
identity_password_verify(const char *hash, const char *password)
{
	bool ok;

	if (identity__global_init() != 0 || password == NULL)
		return false;
	if (hash == NULL) {
		(void)pthread_once(&dummy_once, dummy_hash_once);
		if (dummy_hash[0] != '\0' &&
		    crypto_pwhash_str_verify(dummy_hash, password,
		    strlen(password)) == 0)
			log_warn(IDENTITY_COMPONENT, "a password matched the "
			    "unknown-user hash");
		return false;
	}
	/* crypto_pwhash_str_verify reads a NUL-terminated string of at most
	 * crypto_pwhash_STRBYTES; anything else is not one of our hashes. */
	if (strnlen(hash, crypto_pwhash_STRBYTES) >= crypto_pwhash_STRBYTES ||
	    strncmp(hash, "$argon2id$", 10) != 0)
		return false;
	ok = crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
	return ok;
}

static bool
is_b64url(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_';
}

enum identity_bearer_kind
identity__bearer_kind(const char *s, size_t len)
{
	size_t i, dots = 0, part = 0;

	if (s == NULL || len == 0 || len > JWT_MAX_LEN)
		return IDENTITY_BEARER_INVALID;
	if (len == IDENTITY_TOKEN_LEN && memcmp(s, IDENTITY_TOKEN_PREFIX, 5) == 0) {
		for (i = 5; i < len; i++)
			if (!is_b64url((unsigned char)s[i]))
				return IDENTITY_BEARER_INVALID;
		return IDENTITY_BEARER_TOKEN;
	}
	/* A compact JWS: three non-empty base64url parts. */
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (part == 0)
				return IDENTITY_BEARER_INVALID;
			dots++;
			part = 0;
		} else if (!is_b64url((unsigned char)s[i])) {
			return IDENTITY_BEARER_INVALID;
		} else {
			part++;
		}
	}
	return dots == 2 && part > 0 ? IDENTITY_BEARER_JWT : IDENTITY_BEARER_INVALID;
}
