/*
 * fuzz_config.c - libFuzzer target for the YAML config loader: feeds
 * config_load_yaml_buf with a fixed key table holding every key type, then
 * reads every key back so stored values are exercised too.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

static const struct config_key keys[] = {
	{ "listen", CFG_STRING, "127.0.0.1:8443", "Address.", 0, 0, false },
	{ "port", CFG_INT, "8443", "Port.", 1, 65535, false },
	{ "count", CFG_INT, NULL, "Unbounded int.", 0, 0, false },
	{ "verbose", CFG_BOOL, "false", "Verbose.", 0, 0, false },
	{ "timeout", CFG_DURATION, "30s", "Timeout.", 0, 86400000, false },
	{ "grace", CFG_DURATION, NULL, "Grace.", 0, 0, false },
	{ "max-body", CFG_SIZE, "1M", "Body cap.", 1, 1LL << 30, false },
	{ "cache", CFG_SIZE, NULL, "Cache.", 0, 0, false },
	{ "origins", CFG_LIST, NULL, "Origins.", 0, 0, false },
	{ "token", CFG_STRING, NULL, "Token.", 0, 0, true },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c;
	char err[256];
	volatile size_t sink = 0;

	if (config_new(&c, keys, NKEYS) != 0)
		return 0;
	err[0] = '\0';
	if (config_load_yaml_buf(c, (const char *)data, size, err,
	    sizeof(err)) != 0) {
		/* An error always says something. */
		if (err[0] == '\0')
			__builtin_trap();
	}
	for (size_t i = 0; i < NKEYS; i++) {
		const char *s = config_str(c, keys[i].name);
		sink += s != NULL ? strlen(s) : 0;
		switch (keys[i].type) {
		case CFG_INT: case CFG_DURATION: case CFG_SIZE:
			sink += (size_t)config_int(c, keys[i].name);
			if (keys[i].min < keys[i].max &&
			    strcmp(config_source(c, keys[i].name), "file") == 0 &&
			    (config_int(c, keys[i].name) < keys[i].min ||
			    config_int(c, keys[i].name) > keys[i].max))
				__builtin_trap();
			break;
		case CFG_BOOL:
			sink += config_bool(c, keys[i].name);
			break;
		case CFG_LIST:
			for (const char *const *l = config_list(c, keys[i].name);
			    *l != NULL; l++)
				sink += strlen(*l);
			break;
		case CFG_STRING:
			break;
		}
	}
	(void)sink;
	config_free(c);
	return 0;
}
