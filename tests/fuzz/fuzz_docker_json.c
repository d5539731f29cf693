/*
 * fuzz_docker_json.c - libFuzzer target for the Docker driver's parsers of
 * what the container runtime answers (docker_json.c). The first byte picks
 * the parser, the rest is the answer: 'i' inspect, 'l' list, 's' stats,
 * 'p' one pull progress line, 'e' an error body, 'm' an image reference
 * split, anything else the text cleaner. Every string given out must be
 * NUL-terminated within its field, free of control characters, and the
 * progress text at most DOCKER_STATUS_MAX bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/docker/docker_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_text(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap), i;

	if (n == cap)
		__builtin_trap();
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			__builtin_trap();
		if (c == 0xc2 && i + 1 < n &&
		    (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f)
			__builtin_trap();
	}
}

static void
check_status(const struct drv_status *st)
{
	if (st->state < DRV_ABSENT || st->state > DRV_OTHER)
		__builtin_trap();
	check_text(st->id, sizeof(st->id));
	check_text(st->workspace_id, sizeof(st->workspace_id));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data + 1;
	size_t len = size > 0 ? size - 1 : 0, i, n = 0;
	char err[256], msg[256];
	struct drv_status st, *list = NULL;
	struct drv_stats stats;
	struct docker_progress pr;
	char from[256], tag[256], reg[256], *s;

	if (size == 0)
		return 0;
	err[0] = '\0';
	switch (data[0]) {
	case 'i':
		if (docker__parse_inspect(body, len, &st, err,
		    sizeof(err)) == 0)
			check_status(&st);
		else if (err[0] == '\0')
			__builtin_trap();
		break;
	case 'l':
		if (docker__parse_list(body, len, &list, &n, err,
		    sizeof(err)) == 0) {
			if ((n == 0) != (list == NULL))
				__builtin_trap();
			for (i = 0; i < n; i++)
				check_status(&list[i]);
		} else if (list != NULL || n != 0 || err[0] == '\0') {
			__builtin_trap();
		}
		free(list);
		break;
	case 's':
		if (docker__parse_stats(body, len, &stats, err,
		    sizeof(err)) != 0 && err[0] == '\0')
			__builtin_trap();
		break;
	case 'p':
		if (docker__parse_progress(body, len, &pr) == 0) {
			check_text(pr.text, sizeof(pr.text));
			if (strlen(pr.text) > DOCKER_STATUS_MAX ||
			    (pr.kind == DOCKER_PROGRESS_ERROR &&
			    pr.text[0] == '\0'))
				__builtin_trap();
		}
		break;
	case 'e':
		docker__error_message(body, len, msg, sizeof(msg));
		check_text(msg, sizeof(msg));
		break;
	case 'm':
		/* Image references are NUL-terminated strings. */
		if ((s = malloc(len + 1)) == NULL)
			return 0;
		memcpy(s, body, len);
		s[len] = '\0';
		if (docker__image_split(s, from, sizeof(from), tag,
		    sizeof(tag), reg, sizeof(reg)) == 0) {
			if (!docker__image_ok(s) || from[0] == '\0' ||
			    tag[0] == '\0' || reg[0] == '\0' ||
			    strncmp(s, from, strlen(from)) != 0)
				__builtin_trap();
		}
		free(s);
		break;
	default:
		docker__clean_text(body, len, msg, sizeof(msg), 100);
		check_text(msg, sizeof(msg));
		if (strlen(msg) > 100)
			__builtin_trap();
		break;
	}
	return 0;
}
