/*
 * proxyproto.c - PROXY protocol v1 (text) and v2 (binary) header parser
 * (see proxyproto.h).
 *
 * The input is untrusted and may be incomplete: every read is checked
 * against len first, and a header is accepted only when it is complete and
 * well formed. Choices where the specification leaves room:
 *   - v1: fields are separated by exactly one space, addresses must match
 *     the family (TCP4: dotted quad as inet_pton accepts it, TCP6: IPv6),
 *     ports are decimal 0..65535 without leading zeros, and every byte of
 *     the line must be printable ASCII. "UNKNOWN" may be followed by
 *     anything printable and yields local = true.
 *   - v2: version 2 only; LOCAL yields local = true whatever the address
 *     block says; PROXY over AF_UNSPEC also yields local = true (the
 *     specification asks receivers to use the real connection endpoints);
 *     PROXY with TCP over IPv4 or IPv6 gives the addresses; any other
 *     family or transport (UDP, unix sockets) is refused. TLVs after the
 *     addresses are skipped, but their framing must exactly fill the
 *     announced length.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxyproto.h"

#define PP1_MAX 107	/* "PROXY" line including CRLF, from the spec */

static const uint8_t pp2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

/* Parses a v1 port: 1..5 decimal digits, no leading zero, <= 65535. */
static int
pp1_port(const char *s, uint16_t *out)
{
	size_t n = strlen(s);
	unsigned long v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return MOAT_ERR_PARSE;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return MOAT_ERR_PARSE;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return MOAT_ERR_PARSE;
	*out = (uint16_t)v;
	return 0;
}

/* Fills ss from a textual address of the given family and a port. */
static int
pp1_addr(int family, const char *addr, const char *port,
    struct sockaddr_storage *ss)
{
	uint16_t p;

	if (pp1_port(port, &p) != 0)
		return MOAT_ERR_PARSE;
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
			return MOAT_ERR_PARSE;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(p);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1)
			return MOAT_ERR_PARSE;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(p);
	}
	return 0;
}

static int
pp1_parse(const uint8_t *data, size_t len, struct proxyproto_result *res)
{
	static const char prefix[] = "PROXY ";
	char line[PP1_MAX + 1];
	char *field[6];
	size_t end = 0, nf = 0, lim;
	bool found = false;
	int family;

	lim = len < sizeof(prefix) - 1 ? len : sizeof(prefix) - 1;
	if (memcmp(data, prefix, lim) != 0)
		return MOAT_ERR_PARSE;
	lim = len < PP1_MAX ? len : PP1_MAX;
	for (size_t i = 0; i < lim; i++) {
		if (data[i] == '\r') {
			if (i + 1 == len)
				return MOAT_ERR_AGAIN;
			if (i + 1 >= PP1_MAX || data[i + 1] != '\n')
				return MOAT_ERR_PARSE;
			end = i;
			found = true;
			break;
		}
		if (data[i] < 0x20 || data[i] > 0x7e)
			return MOAT_ERR_PARSE;
	}
	if (!found)
		return len >= PP1_MAX ? MOAT_ERR_PARSE : MOAT_ERR_AGAIN;
	if (end < sizeof(prefix) - 1)
		return MOAT_ERR_PARSE;

	memset(res, 0, sizeof(*res));
	res->version = 1;
	res->header_len = end + 2;
	memcpy(line, data, end);
	line[end] = '\0';
	field[nf++] = line + sizeof(prefix) - 1;
	if (strncmp(field[0], "UNKNOWN", 7) == 0 &&
	    (field[0][7] == '\0' || field[0][7] == ' ')) {
		/* Whatever follows UNKNOWN is to be ignored. */
		res->local = true;
		return 0;
	}

	/* Split "PROTO SRC DST SPORT DPORT" on single spaces. */
	for (char *p = field[0]; *p != '\0'; p++) {
		if (*p != ' ')
			continue;
		*p = '\0';
		if (nf == 6)
			return MOAT_ERR_PARSE;
		field[nf++] = p + 1;
	}

	if (strcmp(field[0], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(field[0], "TCP6") == 0)
		family = AF_INET6;
	else
		return MOAT_ERR_PARSE;
	if (nf != 5)
		return MOAT_ERR_PARSE;
	if (pp1_addr(family, field[1], field[3], &res->src) != 0 ||
	    pp1_addr(family, field[2], field[4], &res->dst) != 0)
		return MOAT_ERR_PARSE;
	return 0;
}

static int
pp2_parse(const uint8_t *data, size_t len, struct proxyproto_result *res)
{
	size_t lim, alen, total, off, need;
	uint8_t cmd, fam;

	lim = len < sizeof(pp2_sig) ? len : sizeof(pp2_sig);
	if (memcmp(data, pp2_sig, lim) != 0)
		return MOAT_ERR_PARSE;
	if (len > 12 && (data[12] >> 4) != 2)
		return MOAT_ERR_PARSE;
	if (len > 12 && (data[12] & 0x0f) > 1)
		return MOAT_ERR_PARSE;
	if (len < 16)
		return MOAT_ERR_AGAIN;
	cmd = data[12] & 0x0f;
	fam = data[13];
	alen = ((size_t)data[14] << 8) | data[15];
	total = 16 + alen;
	if (total > PROXYPROTO_MAX_HEADER)
		return MOAT_ERR_PARSE;
	if (len < total)
		return MOAT_ERR_AGAIN;

	memset(res, 0, sizeof(*res));
	res->version = 2;
	res->header_len = total;
	if (cmd == 0 || fam == 0x00) {
		/* LOCAL (health checks from the balancer itself), or PROXY
		 * for an unspecified family: keep the connection's peer. */
		res->local = true;
		return 0;
	}

	data += 16;
	if (fam == 0x11) {		/* TCP over IPv4 */
		struct sockaddr_in *s = (struct sockaddr_in *)&res->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&res->dst;

		need = 12;
		if (alen < need)
			return MOAT_ERR_PARSE;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, data, 4);
		memcpy(&d->sin_addr, data + 4, 4);
		memcpy(&s->sin_port, data + 8, 2);
		memcpy(&d->sin_port, data + 10, 2);
	} else if (fam == 0x21) {	/* TCP over IPv6 */
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&res->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&res->dst;

		need = 36;
		if (alen < need)
			return MOAT_ERR_PARSE;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, data, 16);
		memcpy(&d->sin6_addr, data + 16, 16);
		memcpy(&s->sin6_port, data + 32, 2);
		memcpy(&d->sin6_port, data + 34, 2);
	} else {
		return MOAT_ERR_PARSE;
	}

	/* TLVs: type (1), length (2, big endian), value; they must tile the
	 * rest of the block exactly. */
	for (off = need; off < alen;) {
		size_t tlen;

		if (alen - off < 3)
			return MOAT_ERR_PARSE;
		tlen = ((size_t)data[off + 1] << 8) | data[off + 2];
		if (alen - off - 3 < tlen)
			return MOAT_ERR_PARSE;
		off += 3 + tlen;
	}
	return 0;
}

int
proxyproto_parse(const uint8_t *data, size_t len,
    struct proxyproto_result *res)
{
	if (data == NULL || res == NULL)
		return MOAT_ERR_INVAL;
	if (len == 0)
		return MOAT_ERR_AGAIN;
	if (data[0] == pp2_sig[0])
		return pp2_parse(data, len, res);
	if (data[0] == 'P')
		return pp1_parse(data, len, res);
	return MOAT_ERR_PARSE;
}
