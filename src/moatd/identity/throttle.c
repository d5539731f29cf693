/*
 * throttle.c - login throttling by (account, client address).
 *
 * A bounded in-memory table of pairs that failed recently. Past
 * IDENTITY_FREE_FAILURES failures, a pair must wait 2^(n - FREE) seconds
 * after its last failure (1, 2, 4 ... capped at 15 minutes) before the
 * next password is even checked. The key is the lower-cased account name
 * and the address; the same account from another address has a row of its
 * own, so a stranger cannot lock anyone out. IPv6 addresses count by their
 * /64 (one host usually holds a whole /64), IPv4-mapped ones as IPv4.
 *
 * The table holds IDENTITY_THROTTLE_SLOTS rows; when it is full the row seen
 * least recently is replaced. A scan of a few thousand rows under a mutex
 * is far cheaper than the argon2id check that follows every allowed
 * attempt, so no index is kept.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/identity_int.h"

int
identity__throttle_init(struct identity_throttle *t)
{
	t->slots = calloc(IDENTITY_THROTTLE_SLOTS, sizeof(*t->slots));
	if (t->slots == NULL)
		return MOAT_ERR_NOMEM;
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t->slots);
		t->slots = NULL;
		return MOAT_ERR_NOMEM;
	}
	return 0;
}

void
identity__throttle_free(struct identity_throttle *t)
{
	if (t == NULL || t->slots == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->slots);
	t->slots = NULL;
}

int
identity__throttle_key(const char *username, const char *addr, char *out,
    size_t outlen)
{
	char a[INET6_ADDRSTRLEN + 4], user[65];
	struct in6_addr a6;
	size_t i;
	int n;

	if (username == NULL)
		username = "";
	if (addr == NULL)
		addr = "";
	/* Longer names are no account's; truncating keeps them throttled. */
	for (i = 0; i < sizeof(user) - 1 && username[i] != '\0'; i++) {
		char c = username[i];

		user[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	user[i] = '\0';
	if (inet_pton(AF_INET6, addr, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			if (inet_ntop(AF_INET, &a6.s6_addr[12], a, sizeof(a)) ==
			    NULL)
				return MOAT_ERR_INVAL;
		} else {
			memset(&a6.s6_addr[8], 0, 8);
			if (inet_ntop(AF_INET6, &a6, a, sizeof(a) - 3) == NULL)
				return MOAT_ERR_INVAL;
			memcpy(a + strlen(a), "/64", 4);
		}
	} else {
		n = snprintf(a, sizeof(a), "%s", addr);
		(void)n;	/* truncated: still a stable key */
	}
	n = snprintf(out, outlen, "%s\n%s", user, a);
	if (n < 0 || (size_t)n >= outlen)
		return MOAT_ERR_INVAL;
	return 0;
}

static uint64_t
key_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static bool
entry_forgotten(const struct identity_throttle_entry *e, int64_t now)
{
	return e->key[0] == '\0' ||
	    now - e->last_failure_ms > (int64_t)IDENTITY_THROTTLE_FORGET_S * 1000;
}

/* The row for key, or NULL. Caller holds the lock. */
static struct identity_throttle_entry *
find(struct identity_throttle *t, const char *key, uint64_t h)
{
	size_t i;

	for (i = 0; i < IDENTITY_THROTTLE_SLOTS; i++) {
		struct identity_throttle_entry *e = &t->slots[i];

		if (e->key[0] != '\0' && e->hash == h && strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

/* A row to reuse: a free or forgotten one, else the least recently
 * seen. Caller holds the lock. */
static struct identity_throttle_entry *
take_slot(struct identity_throttle *t, int64_t now)
{
	struct identity_throttle_entry *oldest = &t->slots[0];
	size_t i;

	for (i = 0; i < IDENTITY_THROTTLE_SLOTS; i++) {
		struct identity_throttle_entry *e = &t->slots[i];

		if (entry_forgotten(e, now))
			return e;
		if (e->last_seen_ms < oldest->last_seen_ms)
			oldest = e;
	}
	return oldest;
}

/* Milliseconds a pair with n failures waits after its last failure. */
static int64_t
delay_ms(unsigned n)
{
	const int64_t cap = (int64_t)IDENTITY_THROTTLE_MAX_DELAY_S * 1000;
	unsigned shift;
	int64_t d;

	if (n < IDENTITY_FREE_FAILURES)
		return 0;
	shift = n - IDENTITY_FREE_FAILURES;
	if (shift >= 20)
		return cap;
	d = ((int64_t)1 << shift) * 1000;
	return d < cap ? d : cap;
}

int
identity_throttle_check(struct identity *id, const char *username,
    const char *addr, int *retry_after_s)
{
	struct identity_throttle *t = &id->throttle;
	struct identity_throttle_entry *e;
	char key[IDENTITY_THROTTLE_KEY_MAX];
	int64_t now = identity__mono_ms(), until;
	uint64_t h;
	int r = 0;

	if (retry_after_s != NULL)
		*retry_after_s = 0;
	if (identity__throttle_key(username, addr, key, sizeof(key)) != 0)
		return 0;
	h = key_hash(key);
	pthread_mutex_lock(&t->lock);
	e = find(t, key, h);
	if (e == NULL)
		goto out;
	if (entry_forgotten(e, now)) {
		memset(e, 0, sizeof(*e));
		goto out;
	}
	e->last_seen_ms = now;
	until = e->last_failure_ms + delay_ms(e->failures);
	if (now < until) {
		if (retry_after_s != NULL)
			*retry_after_s = (int)((until - now + 999) / 1000);
		r = MOAT_ERR_AGAIN;
	}
out:
	pthread_mutex_unlock(&t->lock);
	return r;
}

void
identity_throttle_report(struct identity *id, const char *username,
    const char *addr, bool success)
{
	struct identity_throttle *t = &id->throttle;
	struct identity_throttle_entry *e;
	char key[IDENTITY_THROTTLE_KEY_MAX];
	int64_t now = identity__mono_ms();
	uint64_t h;

	if (identity__throttle_key(username, addr, key, sizeof(key)) != 0)
		return;
	h = key_hash(key);
	pthread_mutex_lock(&t->lock);
	e = find(t, key, h);
	if (success) {
		if (e != NULL)
			memset(e, 0, sizeof(*e));
		goto out;
	}
	if (e == NULL || entry_forgotten(e, now)) {
		if (e == NULL)
			e = take_slot(t, now);
		memset(e, 0, sizeof(*e));
		memcpy(e->key, key, strlen(key) + 1);
		e->hash = h;
	}
	if (e->failures < 1000)
		e->failures++;
	e->last_failure_ms = now;
	e->last_seen_ms = now;
out:
	pthread_mutex_unlock(&t->lock);
}
