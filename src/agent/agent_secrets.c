/*
 * agent_secrets.c - the owner's personal secrets, as moatd hands them over
 * the agent socket (SECRETS): each becomes /run/secrets/NAME (a tmpfs the
 * runtime provides; mode 0400, owned by the workspace user), written to a
 * temporary name that no valid secret name can take (".moat~NAME": '~' is
 * outside the name alphabet) and renamed into place; names no longer
 * present are removed. Secrets marked with a variable name also go into
 * the environment of every login (sshd's SetEnv, then sshd reloads) when
 * their value has no control characters (sshd's configuration is line
 * based); others stay files only and the log says so (names only, never a
 * value).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define SECRET_TMP_PREFIX ".moat~"

static int
secret_write(int dfd, const struct agentproto_secret *s, uid_t uid,
    char *reason, size_t rlen)
{
	char tmp[sizeof(SECRET_TMP_PREFIX) + AGENTPROTO_MAX_NAME + 1];
	size_t done = 0;
	int fd, r = MOAT_ERR_IO;

	snprintf(tmp, sizeof(tmp), "%s%s", SECRET_TMP_PREFIX, s->name);
	(void)unlinkat(dfd, tmp, 0);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0400);
	if (fd < 0) {
		snprintf(reason, rlen, "cannot create secret %s: %s", s->name,
		    strerror(errno));
		return MOAT_ERR_IO;
	}
	while (done < s->value_len) {
		ssize_t n = write(fd, s->value + done, s->value_len - done);

		if (n <= 0) {
			snprintf(reason, rlen, "cannot write secret %s: %s",
			    s->name, n < 0 ? strerror(errno) : "short write");
			goto out;
		}
		done += (size_t)n;
	}
	/* Mode first: once the file is the user's, changing it would need
	 * CAP_FOWNER. */
	if (fchmod(fd, 0400) != 0 || fchown(fd, uid, uid) != 0) {
		snprintf(reason, rlen, "cannot chown secret %s: %s", s->name,
		    strerror(errno));
		goto out;
	}
	r = 0;
out:
	close(fd);
	if (r == 0 && renameat(dfd, tmp, dfd, s->name) != 0) {
		snprintf(reason, rlen, "cannot rename secret %s: %s", s->name,
		    strerror(errno));
		r = MOAT_ERR_IO;
	}
	if (r != 0)
		(void)unlinkat(dfd, tmp, 0);
	return r;
}

/* Removes entries of the directory not named in m (and stale temps). */
static void
secrets_prune(int dfd, const struct agentproto_msg *m)
{
	int dfd2 = dup(dfd);
	DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
	struct dirent *de;

	if (d == NULL) {
		if (dfd2 >= 0)
			close(dfd2);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		bool keep = false;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		for (size_t i = 0; i < m->nsecrets && !keep; i++)
			keep = strcmp(de->d_name, m->secrets[i].name) == 0;
		if (keep)
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			agent_log("secret %s removed", de->d_name);
	}
	closedir(d);
}

/* The runtime's tmpfs may come world-writable (podman's default mode is
 * 1777): only root writes there. */
void
agent_secrets_init(const struct agent *ag)
{
	int fd = open(AGENT_SECRETS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);

	(void)ag;
	if (fd < 0) {
		agent_log("%s: %s (secrets cannot be delivered)",
		    AGENT_SECRETS_DIR, strerror(errno));
		return;
	}
	if (fchown(fd, 0, 0) != 0 || fchmod(fd, 0755) != 0)
		agent_log("%s: cannot make it root's 0755: %s",
		    AGENT_SECRETS_DIR, strerror(errno));
	close(fd);
}

static void
secret_env_free(struct agent_env *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		agent_env_clear(&e[i], true);
	free(e);
}

void
agent_secrets_free(struct agent *ag)
{
	secret_env_free(ag->secret_env, ag->nsecret_env);
	ag->secret_env = NULL;
	ag->nsecret_env = 0;
}

static bool
secret_env_same(const struct agent_env *a, size_t na,
    const struct agent_env *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].name, b[i].name) != 0 ||
		    a[i].value_len != b[i].value_len ||
		    memcmp(a[i].value, b[i].value, a[i].value_len) != 0)
			return false;
	return true;
}

int
agent_secrets_apply(struct agent *ag, const struct agentproto_msg *m,
    char *reason, size_t rlen)
{
	struct agent_env *env = NULL;
	size_t nenv = 0;
	int dfd, r = MOAT_ERR_IO;

	dfd = open(AGENT_SECRETS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (dfd < 0) {
		snprintf(reason, rlen, "%s: %s", AGENT_SECRETS_DIR,
		    strerror(errno));
		goto out;
	}
	if (m->nsecrets > 0 &&
	    (env = calloc(m->nsecrets, sizeof(*env))) == NULL) {
		snprintf(reason, rlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->nsecrets; i++) {
		const struct agentproto_secret *s = &m->secrets[i];

		if (secret_write(dfd, s, ag->conf.uid, reason, rlen) != 0)
			goto out;
		if (s->env[0] == '\0')
			continue;
		if (!agent_env_value_ok(s->value, s->value_len)) {
			agent_log("secret %s: value not usable as variable %s "
			    "(control characters or too long); file only",
			    s->name, s->env);
			continue;
		}
		env[nenv].name = strdup(s->env);
		env[nenv].value = malloc(s->value_len + 1);
		if (env[nenv].name == NULL || env[nenv].value == NULL) {
			agent_env_clear(&env[nenv], true);
			snprintf(reason, rlen, "out of memory");
			goto out;
		}
		memcpy(env[nenv].value, s->value, s->value_len);
		env[nenv].value[s->value_len] = '\0';
		env[nenv].value_len = s->value_len;
		nenv++;
	}
	secrets_prune(dfd, m);
	agent_log("secrets updated: %zu file(s), %zu variable(s)",
	    m->nsecrets, nenv);
	if (!secret_env_same(env, nenv, ag->secret_env, ag->nsecret_env)) {
		agent_secrets_free(ag);
		ag->secret_env = env;
		ag->nsecret_env = nenv;
		env = NULL;
		nenv = 0;
		agent_sshd_reload(ag);
	}
	r = 0;
out:
	secret_env_free(env, nenv);
	if (dfd >= 0)
		close(dfd);
	return r;
}
