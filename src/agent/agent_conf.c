/*
 * agent_conf.c - parses /run/moat/agent.conf, the key=value file moatd
 * writes into the workspace's read-only directory:
 *
 *   user=NAME          [a-z_][a-z0-9_-]{0,31}
 *   uid=1000           1..60000 (the gid is the same)
 *   sudo=0|1
 *   startup=0|1        run /run/moat/startup.sh
 *   proxy_port=3128
 *   env.NAME=VALUE     the template's environment (at most AGENT_MAX_ENV)
 *
 * Blank lines and lines starting with '#' are skipped. The file is
 * host-written but still parsed with bounds: AGENT_MAX_CONF bytes, names
 * and values checked, values without control characters (they go into
 * sshd's SetEnv and the startup script's environment). An unknown key is
 * logged and ignored, so that a newer moatd can add keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

bool
agent_env_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > AGENTPROTO_MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_';

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

bool
agent_env_value_ok(const uint8_t *v, size_t len)
{
	if (len > AGENT_MAX_ENV_VALUE)
		return false;
	for (size_t i = 0; i < len; i++)
		if (v[i] < 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

void
agent_env_clear(struct agent_env *e, bool wipe)
{
	if (e == NULL)
		return;
	if (wipe && e->value != NULL)
		explicit_bzero(e->value, e->value_len);
	free(e->name);
	free(e->value);
	e->name = NULL;
	e->value = NULL;
	e->value_len = 0;
}

void
agent_conf_free(struct agent_conf *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nenv; i++)
		agent_env_clear(&c->env[i], false);
	c->nenv = 0;
}

static bool
conf_user_ok(const char *s, size_t len)
{
	if (len == 0 || len > 32)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if ((c >= 'a' && c <= 'z') || c == '_')
			continue;
		if (i > 0 && ((c >= '0' && c <= '9') || c == '-'))
			continue;
		return false;
	}
	return true;
}

/* Parses a decimal in [lo, hi]; the whole string must be digits. */
static int
conf_num(const char *s, unsigned long lo, unsigned long hi,
    unsigned long *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return MOAT_ERR_IO;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return MOAT_ERR_IO;
	*out = v;
	return 0;
}

static int
conf_line(struct agent_conf *c, char *line, int lineno, char *err,
    size_t errlen)
{
	char *eq = strchr(line, '=');
	const char *key = line, *val;
	unsigned long v;

	if (eq == NULL) {
		snprintf(err, errlen, "agent.conf line %d: no '='", lineno);
		return MOAT_ERR_IO;
	}
	*eq = '\0';
	val = eq + 1;
	if (strcmp(key, "user") == 0) {
		if (!conf_user_ok(val, strlen(val))) {
			snprintf(err, errlen, "agent.conf line %d: bad user "
			    "name", lineno);
			return MOAT_ERR_IO;
		}
		snprintf(c->user, sizeof(c->user), "%s", val);
	} else if (strcmp(key, "uid") == 0) {
		if (conf_num(val, 1, 60000, &v) != 0) {
			snprintf(err, errlen, "agent.conf line %d: bad uid",
			    lineno);
			return MOAT_ERR_IO;
		}
		c->uid = (uid_t)v;
	} else if (strcmp(key, "sudo") == 0 || strcmp(key, "startup") == 0) {
		if (conf_num(val, 0, 1, &v) != 0) {
			snprintf(err, errlen, "agent.conf line %d: %s must be "
			    "0 or 1", lineno, key);
			return MOAT_ERR_IO;
		}
		if (key[1] == 'u')
			c->sudo = v == 1;
		else
			c->startup = v == 1;
	} else if (strcmp(key, "proxy_port") == 0) {
		if (conf_num(val, 1, 65535, &v) != 0) {
			snprintf(err, errlen, "agent.conf line %d: bad "
			    "proxy_port", lineno);
			return MOAT_ERR_IO;
		}
		c->proxy_port = (uint16_t)v;
	} else if (strncmp(key, "env.", 4) == 0) {
		const char *name = key + 4;
		size_t vl = strlen(val);
		struct agent_env *e;

		if (!agent_env_name_ok(name, strlen(name)) ||
		    !agent_env_value_ok((const uint8_t *)val, vl)) {
			snprintf(err, errlen, "agent.conf line %d: bad "
			    "environment entry", lineno);
			return MOAT_ERR_IO;
		}
		for (size_t i = 0; i < c->nenv; i++) {
			if (strcmp(c->env[i].name, name) == 0) {
				snprintf(err, errlen, "agent.conf line %d: "
				    "variable %s repeated", lineno, name);
				return MOAT_ERR_IO;
			}
		}
		if (c->nenv >= AGENT_MAX_ENV) {
			snprintf(err, errlen, "agent.conf line %d: more than "
			    "%d variables", lineno, AGENT_MAX_ENV);
			return MOAT_ERR_IO;
		}
		e = &c->env[c->nenv];
		e->name = strdup(name);
		e->value = strdup(val);
		e->value_len = vl;
		if (e->name == NULL || e->value == NULL) {
			agent_env_clear(e, false);
			snprintf(err, errlen, "out of memory");
			return MOAT_ERR_IO;
		}
		c->nenv++;
	} else {
		agent_log("agent.conf line %d: unknown key ignored", lineno);
	}
	return 0;
}

int
agent_conf_load(const char *path, struct agent_conf *c, char *err,
    size_t errlen)
{
	char *buf = NULL, *p, *nl;
	size_t len = 0;
	int fd = -1, lineno = 0, r = MOAT_ERR_IO;

	memset(c, 0, sizeof(*c));
	c->uid = 1000;
	c->proxy_port = 3128;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if ((buf = malloc(AGENT_MAX_CONF + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, AGENT_MAX_CONF + 1 - len);

		if (n < 0) {
			snprintf(err, errlen, "reading %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > AGENT_MAX_CONF) {
			snprintf(err, errlen, "%s is larger than %d bytes",
			    path, AGENT_MAX_CONF);
			goto out;
		}
	}
	if (memchr(buf, '\0', len) != NULL) {
		snprintf(err, errlen, "%s holds a NUL byte", path);
		goto out;
	}
	buf[len] = '\0';
	for (p = buf; *p != '\0'; p = nl) {
		lineno++;
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl++ = '\0';
		else
			nl = p + strlen(p);
		if (*p == '\0' || *p == '#')
			continue;
		if (conf_line(c, p, lineno, err, errlen) != 0)
			goto out;
	}
	if (c->user[0] == '\0') {
		snprintf(err, errlen, "%s: no user", path);
		goto out;
	}
	r = 0;
out:
	if (r != 0)
		agent_conf_free(c);
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}
