/*
 * http.c - the HTTP/1.1 server core (see http.h): listeners, the PROXY
 * protocol phase, connections on libevent bufferevents (plain or TLS),
 * timeouts, responses, the access log and the request accessors. Request
 * parsing lives in http_parse.c, routing in http_route.c.
 *
 * Life of a connection (all on the loop thread that accepted it):
 *   accept -> [PROXY header read from the raw socket with MSG_PEEK, so not
 *   one byte of the TLS handshake is consumed] -> bufferevent (TLS
 *   handshake inside) -> HEAD -> BODY -> PENDING (handler) -> response
 *   queued -> HEAD again (keep-alive) or CLOSING -> flush -> LINGER (write
 *   side shut, input discarded until EOF so that the client reads the last
 *   answer instead of a reset) -> freed.
 *
 * One timer per connection covers the header, body, idle and linger
 * deadlines (libevent "common timeouts", O(1) per re-arm); the write
 * timeout is the bufferevent's. Reading is never switched off: the input
 * is bounded by a read watermark instead, which also lets the core notice a
 * client going away while its request is pending.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "http_int.h"
#include "log.h"
#include "proxyproto.h"

/* --- small helpers --- */

void
http_limits_default(struct http_limits *l)
{
	l->max_request_line = 8 * 1024;
	l->max_header_bytes = 16 * 1024;
	l->max_headers = 100;
	l->max_body = 1024 * 1024;
	l->header_timeout_ms = 10 * 1000;
	l->body_timeout_ms = 30 * 1000;
	l->idle_timeout_ms = 60 * 1000;
	l->write_timeout_ms = 30 * 1000;
	l->max_conns = 10000;
}

uint64_t
http__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *
http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 499: return "Client Closed Request";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* Rewrites an IPv4-mapped IPv6 address (dual-stack sockets) as IPv4. */
static void
addr_normalize(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in s4;

	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return;
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	s4.sin_port = s6->sin6_port;
	memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &s4, sizeof(s4));
}

static void
addr_format(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	const void *a = NULL;

	if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (a == NULL || inet_ntop(ss->ss_family, a, out, (socklen_t)outlen) == NULL)
		snprintf(out, outlen, "unknown");
}

/* Parses "1.2.3.4:80" or "[::1]:80" (port 0..65535; 0: any). libevent's
 * evutil_parse_sockaddr_port refuses port 0, which tests need. */
static int
addr_parse(const char *s, struct sockaddr_storage *ss, int *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *h = s;
	size_t hl;
	char *end;
	long port;

	if ((colon = strrchr(s, ':')) == NULL)
		return MOAT_ERR_INVAL;
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		h = s + 1;
		hl -= 2;
	} else if (memchr(s, ':', hl) != NULL) {
		return MOAT_ERR_INVAL;	/* IPv6 needs brackets */
	}
	if (hl == 0 || hl >= sizeof(host) || colon[1] < '0' || colon[1] > '9')
		return MOAT_ERR_INVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port < 0 || port > 65535)
		return MOAT_ERR_INVAL;
	memset(ss, 0, sizeof(*ss));
	if (h == s && inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*len = (int)sizeof(struct sockaddr_in);
	} else if (h != s && inet_pton(AF_INET6, host,
	    &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		*len = (int)sizeof(struct sockaddr_in6);
	} else {
		return MOAT_ERR_INVAL;
	}
	return 0;
}

static int
cidr_parse(const char *s, struct http_cidr *out)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned max;

	if (alen == 0 || alen >= sizeof(tmp))
		return MOAT_ERR_INVAL;
	memcpy(tmp, s, alen);
	tmp[alen] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, tmp, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)out->addr))
			return MOAT_ERR_INVAL;	/* say 10.0.0.0/8 instead */
	} else {
		return MOAT_ERR_INVAL;
	}
	out->bits = max;
	if (slash != NULL) {
		char *end;
		long v;

		errno = 0;
		v = strtol(slash + 1, &end, 10);
		if (errno != 0 || end == slash + 1 || *end != '\0' || v < 0 ||
		    v > (long)max || slash[1] == '+' || slash[1] == '-' ||
		    slash[1] == ' ')
			return MOAT_ERR_INVAL;
		out->bits = (unsigned)v;
	}
	return 0;
}

static bool
cidr_match(const struct http_cidr *c, size_t n, const struct sockaddr_storage *ss)
{
	const uint8_t *a;

	for (size_t i = 0; i < n; i++) {
		unsigned full, rest;

		if (c[i].family != ss->ss_family)
			continue;
		a = ss->ss_family == AF_INET ?
		    (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr :
		    (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		full = c[i].bits / 8;
		rest = c[i].bits % 8;
		if (memcmp(a, c[i].addr, full) != 0)
			continue;
		if (rest != 0) {
			uint8_t mask = (uint8_t)(0xff << (8 - rest));

			if ((a[full] & mask) != (c[i].addr[full] & mask))
				continue;
		}
		return true;
	}
	return false;
}

/* "Date: ...\r\n", formatted once per second per thread. */
static const char *
http_date_line(size_t *len)
{
	static const char days[7][4] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	static _Thread_local time_t cached_sec = (time_t)-1;
	static _Thread_local char line[64];
	static _Thread_local size_t line_len;
	time_t now = time(NULL);

	if (now != cached_sec) {
		struct tm tm;
		int n;

		gmtime_r(&now, &tm);
		n = snprintf(line, sizeof(line),
		    "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
		    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
		    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
		line_len = n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0;
		cached_sec = now;
	}
	*len = line_len;
	return line;
}

/* --- server --- */

int
http_server_new(struct http_server **out, const struct http_limits *limits)
{
	struct http_server *srv;
	struct http_limits d;

	http_limits_default(&d);
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return MOAT_ERR_NOMEM;
	srv->lim = limits != NULL ? *limits : d;
	/* Zero means "the default" for every limit. */
#define LIM_DEFAULT(f) do { if (srv->lim.f == 0) srv->lim.f = d.f; } while (0)
	LIM_DEFAULT(max_request_line);
	LIM_DEFAULT(max_header_bytes);
	LIM_DEFAULT(max_headers);
	LIM_DEFAULT(max_body);
	LIM_DEFAULT(header_timeout_ms);
	LIM_DEFAULT(body_timeout_ms);
	LIM_DEFAULT(idle_timeout_ms);
	LIM_DEFAULT(write_timeout_ms);
	LIM_DEFAULT(max_conns);
#undef LIM_DEFAULT
	if ((srv->access_component = strdup("access")) == NULL) {
		free(srv);
		return MOAT_ERR_NOMEM;
	}
	atomic_init(&srv->open_conns, 0);
	atomic_init(&srv->shutting_down, false);
	*out = srv;
	return 0;
}

int
http_server_route(struct http_server *srv, const char *method,
    const char *pattern, http_handler_fn fn, void *arg)
{
	if (srv == NULL || srv->listeners != NULL)
		return MOAT_ERR_INVAL;
	return http__route_add(srv, method, pattern, fn, arg);
}

void
http_server_set_observer(struct http_server *srv, http_observer_fn fn,
    void *arg)
{
	srv->observer = fn;
	srv->observer_arg = arg;
}

uint64_t
http_server_open_conns(const struct http_server *srv)
{
	return atomic_load(&((struct http_server *)srv)->open_conns);
}

void
http_server_set_access_log(struct http_server *srv, const char *component)
{
	free(srv->access_component);
	srv->access_component = component != NULL ? strdup(component) : NULL;
}

/* --- connections --- */

void
http__conn_arm(struct http_conn *c, int which)
{
	const struct timeval *tv;

	if (c->timer == NULL)
		return;
	switch (which) {
	case HTTP_TIMER_HEADER: tv = c->ctx->tv_header; break;
	case HTTP_TIMER_BODY: tv = c->ctx->tv_body; break;
	case HTTP_TIMER_IDLE: tv = c->ctx->tv_idle; break;
	default:
		event_del(c->timer);
		return;
	}
	event_add(c->timer, tv);
}

static void
log_access(struct http_request *req, int status, size_t bytes)
{
	const char *comp = req->srv->access_component;
	struct log_field f[10];
	size_t n = 0;
	double ms;

	if (comp == NULL)
		return;
	ms = req->start_ns != 0 ?
	    (double)(http__now_ns() - req->start_ns) / 1e6 : 0.0;
	f[n++] = LF_STR("method", req->method != NULL ? req->method : "");
	f[n++] = LF_STR("path", req->path != NULL ? req->path : "");
	f[n++] = LF_INT("status", status);
	f[n++] = LF_INT("bytes", bytes);
	f[n++] = LF_DOUBLE("duration_ms", ms);
	f[n++] = LF_STR("client", req->client);
	if (strcmp(req->client, req->peer) != 0)
		f[n++] = LF_STR("peer", req->peer);
	f[n++] = LF_STR("proto", req->tls ? "https" : "http");
	f[n++] = LF_END;
	log_write(LOG_INFO, comp, "request", f);
}

static void
observe(struct http_request *req, int status)
{
	struct http_server *srv = req->srv;
	uint64_t dur;

	if (srv->observer == NULL)
		return;
	dur = req->start_ns != 0 ? http__now_ns() - req->start_ns : 0;
	srv->observer(req, req->ep != NULL ? req->ep->pattern : "", status,
	    dur, srv->observer_arg);
}

void
http__conn_free(struct http_conn *c)
{
	struct http_request *req;

	if (c == NULL)
		return;
	if ((req = c->req) != NULL) {
		c->req = NULL;
		if (c->state == HC_PENDING && !c->in_dispatch) {
			/* The handler still has it: answer into the void. */
			log_access(req, 499, 0);
			observe(req, 499);
			req->conn = NULL;
			req->orphaned = true;
		} else {
			http__req_free(req);
		}
	}
	if (c->ctx != NULL)
		TAILQ_REMOVE(&c->ctx->conns, c, link);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->resume_ev != NULL)
		event_free(c->resume_ev);
	if (c->raw_ev != NULL)
		event_free(c->raw_ev);
	if (c->bev != NULL)
		bufferevent_free(c->bev);	/* closes the socket */
	else if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->pp);
	if (c->counted)
		atomic_fetch_sub(&c->srv->open_conns, 1);
	if (c->on_close != NULL)
		c->on_close(c->conn_arg);
	free(c);
}

static void
linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	char tmp[4096];
	ssize_t n;

	if (what & EV_TIMEOUT) {
		http__conn_free(c);
		return;
	}
	for (;;) {
		n = recv(fd, tmp, sizeof(tmp), 0);
		if (n > 0) {
			c->linger_bytes += (size_t)n;
			if (c->linger_bytes > HTTP_LINGER_BYTES)
				break;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	http__conn_free(c);
}

/* The last answer is out: shut the write side and discard what the client
 * still sends, so that closing does not reset the connection under an
 * answer it has not read yet. */
static void
conn_linger(struct http_conn *c)
{
	struct timeval tv = { HTTP_LINGER_MS / 1000, (HTTP_LINGER_MS % 1000) * 1000 };
	evutil_socket_t fd;
	SSL *ssl;

	c->state = HC_LINGER;
	if (c->bev == NULL)
		return;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->peer_eof) {
		http__conn_free(c);
		return;
	}
	fd = bufferevent_getfd(c->bev);
	if ((ssl = bufferevent_openssl_get_ssl(c->bev)) != NULL) {
		/* close_notify; one non-blocking attempt is enough. */
		(void)SSL_shutdown(ssl);
		ERR_clear_error();
	}
	(void)shutdown(fd, SHUT_WR);
	if (c->raw_ev != NULL)
		event_free(c->raw_ev);
	c->raw_ev = event_new(c->base, fd, EV_READ | EV_PERSIST, linger_cb, c);
	if (c->raw_ev == NULL || event_add(c->raw_ev, &tv) != 0) {
		http__conn_free(c);
		return;
	}
	http__conn_arm(c, HTTP_TIMER_NONE);
}

void
http__conn_close_after_flush(struct http_conn *c)
{
	c->state = HC_CLOSING;
	http__conn_arm(c, HTTP_TIMER_NONE);
	if (c->bev == NULL)
		return;
	/* The write callback fires once the output is drained; with nothing
	 * to write, go through the resume event instead. */
	if (evbuffer_get_length(c->out) == 0 && c->resume_ev != NULL)
		event_active(c->resume_ev, EV_TIMEOUT, 0);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	if (c->state == HC_CLOSING) {
		if (evbuffer_get_length(c->out) == 0)
			conn_linger(c);
		return;
	}
	if (c->state == HC_HEAD || c->state == HC_BODY)
		(void)http__conn_process(c);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	switch (c->state) {
	case HC_PROXY:
		log_warn("http", "PROXY header refused",
		    LF_STR("peer", c->req->peer), LF_STR("reason", "timeout"));
		http__conn_free(c);
		break;
	case HC_HEAD:
		if (!c->req->started) {
			http__conn_free(c);	/* idle keep-alive */
			break;
		}
		/* FALLTHROUGH */
	case HC_BODY:
		http__core_error(c, 408, "request_timeout",
		    "request not received in time");
		break;
	case HC_PENDING:
	case HC_LENT:
		break;
	case HC_CLOSING:
	case HC_LINGER:
		http__conn_free(c);
		break;
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	if (c->state == HC_HEAD || c->state == HC_BODY)
		(void)http__conn_process(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	if (c->state == HC_CLOSING) {
		conn_linger(c);
		return;
	}
	if (c->write_blocked) {
		c->write_blocked = false;
		(void)http__conn_process(c);
	}
}

static void
tls_connected(struct http_conn *c)
{
	struct http_request *req = c->req;
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

	if (ssl == NULL)
		return;
	if (tls_peer_name(ssl, req->tls_name, sizeof(req->tls_name)) == 0)
		req->has_tls_name = true;
	if (c->lst->xff_names != NULL &&
	    tls_peer_name_matches(ssl, (const char *const *)c->lst->xff_names))
		req->xff_trusted = true;
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		tls_connected(c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		c->peer_eof = true;
		switch (c->state) {
		case HC_HEAD:
			if (c->req->started)
				break;
			if (evbuffer_get_length(c->in) > 0)
				return;		/* blocked pipeline goes on */
			if (evbuffer_get_length(c->out) > 0) {
				http__conn_close_after_flush(c);
				return;
			}
			break;
		case HC_PENDING:
		case HC_CLOSING:
			return;		/* answer, then close */
		default:
			break;
		}
	}
	http__conn_free(c);
}

/* Creates the bufferevent once any PROXY header is consumed. */
static void
conn_start(struct http_conn *c)
{
	struct http_listener *l = c->lst;
	struct bufferevent *bev;

	if (l->tls != NULL) {
		SSL *ssl = tls_server_new_ssl(l->tls);

		if (ssl == NULL) {
			http__conn_free(c);
			return;
		}
		/* On failure libevent frees ssl (BEV_OPT_CLOSE_ON_FREE). */
		bev = bufferevent_openssl_socket_new(c->base, c->fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
		c->req->tls = true;
	} else {
		bev = bufferevent_socket_new(c->base, c->fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (bev == NULL) {
		http__conn_free(c);
		return;
	}
	c->bev = bev;
	c->in = bufferevent_get_input(bev);
	c->out = bufferevent_get_output(bev);
	c->state = HC_HEAD;
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(bev, EV_READ, 0, HTTP_IN_HIGH);
	bufferevent_set_timeouts(bev, NULL, &c->ctx->tv_write);
	if (bufferevent_enable(bev, EV_READ | EV_WRITE) != 0)
		http__conn_free(c);
}

static void
proxy_refuse(struct http_conn *c, const char *reason)
{
	log_warn("http", "PROXY header refused", LF_STR("peer", c->req->peer),
	    LF_STR("reason", reason));
	http__conn_free(c);
}

static void
proxy_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	uint8_t tmp[PROXYPROTO_MAX_HEADER];
	struct proxyproto_result res;
	size_t have = c->pp.len, need;
	ssize_t n;
	int r;

	if (have > 0)
		memcpy(tmp, c->pp.data, have);
	n = recv(fd, tmp + have, sizeof(tmp) - have, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		proxy_refuse(c, n == 0 ? "closed before the header" : "read error");
		return;
	}
	r = proxyproto_parse(tmp, have + (size_t)n, &res);
	if (r == MOAT_ERR_AGAIN) {
		/* Every byte seen is part of the header: take them. */
		if (have + (size_t)n >= sizeof(tmp) ||
		    recv(fd, tmp + have, (size_t)n, 0) != n ||
		    buf_append(&c->pp, tmp + have, (size_t)n) != 0) {
			proxy_refuse(c, "header too long");
			return;
		}
		return;
	}
	if (r != 0) {
		proxy_refuse(c, "invalid header");
		return;
	}
	need = res.header_len - have;
	if (recv(fd, tmp + have, need, 0) != (ssize_t)need) {
		proxy_refuse(c, "read error");
		return;
	}
	if (!res.local) {
		addr_normalize(&res.src);
		addr_format(&res.src, c->req->conn_client,
		    sizeof(c->req->conn_client));
	}
	event_free(c->raw_ev);
	c->raw_ev = NULL;
	buf_free(&c->pp);
	conn_start(c);
}

static struct http_base_ctx *ctx_get(struct http_server *srv,
    struct event_base *base);

/* A new connection on listener l (its base's thread): counted against
 * max_conns, timers armed; peer is the client address as shown. NULL (fd
 * closed) when refused or out of memory. */
static struct http_conn *
conn_new(struct http_listener *l, evutil_socket_t fd, const char *peer)
{
	struct http_server *srv = l->srv;
	struct http_conn *c = NULL;

	if (atomic_load(&srv->shutting_down)) {
		close(fd);
		return NULL;
	}
	if (atomic_fetch_add(&srv->open_conns, 1) >= srv->lim.max_conns) {
		atomic_fetch_sub(&srv->open_conns, 1);
		close(fd);
		log_debug("http", "connection refused: max_conns reached");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		atomic_fetch_sub(&srv->open_conns, 1);
		close(fd);
		return NULL;
	}
	c->counted = true;
	c->srv = srv;
	c->lst = l;
	c->ctx = l->ctx;
	c->base = l->ctx->base;
	c->fd = fd;
	c->first = true;
	c->state = HC_HEAD;
	buf_init(&c->pp, PROXYPROTO_MAX_HEADER);
	TAILQ_INSERT_TAIL(&c->ctx->conns, c, link);
	if ((c->req = calloc(1, sizeof(*c->req))) == NULL ||
	    http__req_init(c->req, srv) != 0)
		goto fail;
	c->req->conn = c;
	c->req->base = c->base;
	snprintf(c->req->peer, sizeof(c->req->peer), "%s", peer);
	memcpy(c->req->conn_client, c->req->peer, sizeof(c->req->peer));
	c->timer = evtimer_new(c->base, timer_cb, c);
	c->resume_ev = event_new(c->base, -1, 0, resume_cb, c);
	if (c->timer == NULL || c->resume_ev == NULL)
		goto fail;
	http__conn_arm(c, HTTP_TIMER_HEADER);
	return c;
fail:
	http__conn_free(c);
	return NULL;
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct http_listener *l = arg;
	struct sockaddr_storage peer;
	struct http_conn *c;
	char text[HTTP_ADDR_MAX];
	int one = 1;

	(void)lev;
	memset(&peer, 0, sizeof(peer));
	if (salen > 0 && (size_t)salen <= sizeof(peer))
		memcpy(&peer, sa, (size_t)salen);
	addr_normalize(&peer);
	addr_format(&peer, text, sizeof(text));
	if ((c = conn_new(l, fd, text)) == NULL)
		return;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	if (l->proxy_from != NULL) {
		if (!cidr_match(l->proxy_from, l->nproxy, &peer)) {
			proxy_refuse(c, "peer not allowed to send PROXY headers");
			return;
		}
		c->state = HC_PROXY;
		c->raw_ev = event_new(c->base, fd, EV_READ | EV_PERSIST,
		    proxy_cb, c);
		if (c->raw_ev == NULL || event_add(c->raw_ev, NULL) != 0)
			goto fail;
		return;
	}
	conn_start(c);
	return;
fail:
	http__conn_free(c);
}

int
http_server_attach(struct http_server *srv, struct event_base *base)
{
	struct http_base_ctx *ctx;
	struct http_listener *l;

	if (srv == NULL || base == NULL)
		return MOAT_ERR_INVAL;
	if ((ctx = ctx_get(srv, base)) == NULL)
		return MOAT_ERR_NOMEM;
	if (ctx->adopt != NULL)
		return 0;
	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->addr = strdup("adopted")) == NULL) {
		free(l);
		return MOAT_ERR_NOMEM;
	}
	l->srv = srv;
	l->ctx = ctx;
	ctx->adopt = l;
	return 0;
}

int
http_server_adopt(struct http_server *srv, struct event_base *base, int fd,
    const struct http_adopt_opts *o)
{
	struct http_base_ctx *ctx;
	struct http_conn *c;

	for (ctx = srv->ctxs; ctx != NULL; ctx = ctx->next)
		if (ctx->base == base)
			break;
	if (ctx == NULL || ctx->adopt == NULL) {
		close(fd);
		return MOAT_ERR_INVAL;
	}
	if (evutil_make_socket_nonblocking(fd) != 0) {
		close(fd);
		return MOAT_ERR_IO;
	}
	if ((c = conn_new(ctx->adopt, fd, o != NULL && o->client != NULL ?
	    o->client : "local")) == NULL)
		return atomic_load(&srv->shutting_down) ? MOAT_ERR_CLOSED :
		    MOAT_ERR_AGAIN;
	if (o != NULL) {
		c->conn_arg = o->conn_arg;
		c->on_close = o->on_close;
	}
	conn_start(c);
	return 0;
}

void *
http_req_conn_arg(const struct http_request *req)
{
	return req != NULL && req->conn != NULL ? req->conn->conn_arg : NULL;
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_listener *l = arg;

	if (!atomic_load(&l->srv->shutting_down) && l->lev != NULL)
		evconnlistener_enable(l->lev);
}

static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct http_listener *l = arg;
	struct timeval tv = { 0, 100 * 1000 };
	int err = EVUTIL_SOCKET_ERROR();

	log_warn("http", "accept failed", LF_STR("error", strerror(err)),
	    LF_INT("port", l->port));
	/* Out of descriptors: pause instead of spinning on the listener. */
	evconnlistener_disable(lev);
	if (l->retry_ev != NULL)
		event_add(l->retry_ev, &tv);
}

static struct http_base_ctx *
ctx_get(struct http_server *srv, struct event_base *base)
{
	struct http_base_ctx *ctx;
	struct timeval tv;
	unsigned ms;

	for (ctx = srv->ctxs; ctx != NULL; ctx = ctx->next)
		if (ctx->base == base)
			return ctx;
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return NULL;
	ctx->srv = srv;
	ctx->base = base;
	TAILQ_INIT(&ctx->conns);
#define MS_TV(ms_) (tv.tv_sec = (ms_) / 1000, tv.tv_usec = ((ms_) % 1000) * 1000, &tv)
	ms = srv->lim.header_timeout_ms;
	ctx->tv_header = event_base_init_common_timeout(base, MS_TV(ms));
	ms = srv->lim.body_timeout_ms;
	ctx->tv_body = event_base_init_common_timeout(base, MS_TV(ms));
	ms = srv->lim.idle_timeout_ms;
	ctx->tv_idle = event_base_init_common_timeout(base, MS_TV(ms));
	ms = srv->lim.write_timeout_ms;
	ctx->tv_write = *MS_TV(ms);
#undef MS_TV
	if (ctx->tv_header == NULL || ctx->tv_body == NULL || ctx->tv_idle == NULL) {
		free(ctx);
		return NULL;
	}
	ctx->next = srv->ctxs;
	srv->ctxs = ctx;
	return ctx;
}

static void
listener_free(struct http_listener *l)
{
	if (l == NULL)
		return;
	if (l->lev != NULL)
		evconnlistener_free(l->lev);
	if (l->retry_ev != NULL)
		event_free(l->retry_ev);
	free(l->proxy_from);
	if (l->xff_names != NULL)
		for (size_t i = 0; l->xff_names[i] != NULL; i++)
			free(l->xff_names[i]);
	free(l->xff_names);
	free(l->addr);
	free(l);
}

int
http_server_listen(struct http_server *srv, struct event_base *base,
    const struct http_listener_opts *opts)
{
	struct http_listener *l = NULL, **tail;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int len = (int)sizeof(ss), r = MOAT_ERR_INVAL;
	unsigned flags;
	size_t n;

	if (srv == NULL || base == NULL || opts == NULL || opts->addr == NULL)
		goto out;
	memset(&ss, 0, sizeof(ss));
	if (addr_parse(opts->addr, &ss, &len) != 0) {
		log_error("http", "invalid listen address", LF_STR("addr", opts->addr));
		goto out;
	}
	r = MOAT_ERR_NOMEM;
	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->addr = strdup(opts->addr)) == NULL)
		goto out;
	l->srv = srv;
	l->tls = opts->tls;
	l->reuseport = opts->reuseport;
	if (opts->proxy_from != NULL) {
		for (n = 0; opts->proxy_from[n] != NULL; n++)
			;
		if ((l->proxy_from = calloc(n > 0 ? n : 1, sizeof(*l->proxy_from))) == NULL)
			goto out;
		for (size_t i = 0; i < n; i++) {
			if (cidr_parse(opts->proxy_from[i], &l->proxy_from[i]) != 0) {
				log_error("http", "invalid proxy_from network",
				    LF_STR("cidr", opts->proxy_from[i]));
				r = MOAT_ERR_INVAL;
				goto out;
			}
		}
		l->nproxy = n;
	}
	if (opts->xff_from_names != NULL) {
		for (n = 0; opts->xff_from_names[n] != NULL; n++)
			;
		if ((l->xff_names = calloc(n + 1, sizeof(char *))) == NULL)
			goto out;
		for (size_t i = 0; i < n; i++)
			if ((l->xff_names[i] = strdup(opts->xff_from_names[i])) == NULL)
				goto out;
	}
	if ((l->ctx = ctx_get(srv, base)) == NULL)
		goto out;

	/* ":0" on further bases with reuseport: share the first one's port. */
	if ((ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_port == 0) ||
	    (ss.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&ss)->sin6_port == 0)) {
		for (struct http_listener *o = srv->listeners; o != NULL; o = o->next) {
			if (!opts->reuseport || !o->reuseport ||
			    strcmp(o->addr, opts->addr) != 0)
				continue;
			if (ss.ss_family == AF_INET)
				((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)o->port);
			else
				((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)o->port);
			break;
		}
	}

	r = MOAT_ERR_IO;
	flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
	    LEV_OPT_REUSEABLE | LEV_OPT_THREADSAFE;
	if (opts->reuseport)
		flags |= LEV_OPT_REUSEABLE_PORT;
	l->lev = evconnlistener_new_bind(base, accept_cb, l, flags, 1024,
	    (struct sockaddr *)&ss, len);
	if (l->lev == NULL) {
		int err = errno;

		log_error("http", "cannot listen", LF_STR("addr", opts->addr),
		    LF_STR("error", strerror(err)));
		r = moat_err_from_errno(err);
		goto out;
	}
	evconnlistener_set_error_cb(l->lev, accept_error_cb);
	if ((l->retry_ev = evtimer_new(base, retry_cb, l)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if (getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&ss,
	    &sslen) == 0)
		l->port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	for (tail = &srv->listeners; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = l;
	log_info("http", "listening", LF_STR("addr", opts->addr),
	    LF_INT("port", l->port), LF_BOOL("tls", l->tls != NULL),
	    LF_BOOL("proxy_protocol", l->proxy_from != NULL));
	l = NULL;
	r = 0;
out:
	listener_free(l);
	return r;
}

int
http_server_bound_port(const struct http_server *srv, int index)
{
	const struct http_listener *l;
	int i = 0;

	for (l = srv->listeners; l != NULL; l = l->next, i++)
		if (i == index)
			return l->port;
	return -1;
}

/* On a loop thread after shutdown: close this base's listening sockets
 * (clients still in the backlog get a reset rather than a hang), and the
 * connections that wait for a next request; the others close after their
 * current answer. */
static void
shutdown_base_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_base_ctx *ctx = arg;
	struct http_conn *c, *next;

	for (struct http_listener *l = ctx->srv->listeners; l != NULL; l = l->next) {
		if (l->ctx != ctx || l->lev == NULL)
			continue;
		if (l->retry_ev != NULL)
			event_del(l->retry_ev);
		evconnlistener_free(l->lev);
		l->lev = NULL;
	}

	for (c = TAILQ_FIRST(&ctx->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == HC_PROXY ||
		    (c->state == HC_HEAD && !c->req->started &&
		    evbuffer_get_length(c->out) == 0))
			http__conn_free(c);
		else if (c->state == HC_HEAD && !c->req->started)
			http__conn_close_after_flush(c);
	}
}

void
http_server_shutdown(struct http_server *srv)
{
	/* 1 us rather than 0, so that the event goes through event_add like
	 * any timer, which wakes a loop thread blocked in epoll_wait. */
	struct timeval now = { 0, 1 };

	if (srv == NULL || atomic_exchange(&srv->shutting_down, true))
		return;
	/* evconnlistener_disable takes the listener's lock
	 * (LEV_OPT_THREADSAFE), so this is safe from any thread; the
	 * listeners are freed later on their own threads. */
	for (struct http_listener *l = srv->listeners; l != NULL; l = l->next)
		if (l->lev != NULL)
			evconnlistener_disable(l->lev);
	for (struct http_base_ctx *ctx = srv->ctxs; ctx != NULL; ctx = ctx->next)
		(void)event_base_once(ctx->base, -1, EV_TIMEOUT, shutdown_base_cb,
		    ctx, &now);
}

void
http_server_free(struct http_server *srv)
{
	struct http_base_ctx *ctx, *cnext;
	struct http_listener *l, *lnext;

	if (srv == NULL)
		return;
	for (ctx = srv->ctxs; ctx != NULL; ctx = cnext) {
		cnext = ctx->next;
		while (!TAILQ_EMPTY(&ctx->conns))
			http__conn_free(TAILQ_FIRST(&ctx->conns));
		listener_free(ctx->adopt);
		free(ctx);
	}
	for (l = srv->listeners; l != NULL; l = lnext) {
		lnext = l->next;
		listener_free(l);
	}
	http__route_free(srv);
	free(srv->access_component);
	free(srv);
}

/* --- responses --- */

/* A fixed-size header builder; overflow is detected, not truncated. */
struct hbuf {
	char *p;
	size_t len, cap;
	bool over;
};

static void
hb_add(struct hbuf *h, const void *s, size_t n)
{
	if (n == 0)
		return;
	if (h->over || n > h->cap - h->len) {
		h->over = true;
		return;
	}
	memcpy(h->p + h->len, s, n);
	h->len += n;
}

#define HB_LIT(h, s) hb_add((h), (s), sizeof(s) - 1)

static void
hb_u64(struct hbuf *h, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	hb_add(h, tmp + i, sizeof(tmp) - i);
}

static bool
value_ok(const char *v)
{
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

int
http_resp_header(struct http_request *req, const char *name,
    const char *value)
{
	static const char *const reserved[] = {
		"content-length", "transfer-encoding", "connection",
		"keep-alive", "date", "content-type", "x-content-type-options",
		NULL
	};
	size_t nl;
	int r;

	if (req == NULL || name == NULL || value == NULL)
		return MOAT_ERR_INVAL;
	if ((nl = strlen(name)) == 0 || !value_ok(value))
		return MOAT_ERR_INVAL;
	for (size_t i = 0; i < nl; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL))
			return MOAT_ERR_INVAL;
	}
	for (size_t i = 0; reserved[i] != NULL; i++)
		if (strcasecmp(name, reserved[i]) == 0)
			return MOAT_ERR_INVAL;
	if ((r = buf_append(&req->resp_hdrs, name, nl)) != 0 ||
	    (r = buf_append(&req->resp_hdrs, ": ", 2)) != 0 ||
	    (r = buf_append_str(&req->resp_hdrs, value)) != 0 ||
	    (r = buf_append(&req->resp_hdrs, "\r\n", 2)) != 0)
		return r;
	if (strcasecmp(name, "cache-control") == 0)
		req->resp_cache_control = true;
	return 0;
}

/* After the answer is queued: next request or close. */
static void
req_finish(struct http_conn *c, bool keep)
{
	c->first = false;
	if (!keep) {
		http__conn_close_after_flush(c);
		return;
	}
	http__req_reset(c->req);
	c->state = HC_HEAD;
	/* An answer given later (async) resumes parsing from the loop, not
	 * from inside the caller's stack. */
	if (!c->in_dispatch && c->resume_ev != NULL)
		event_active(c->resume_ev, EV_TIMEOUT, 0);
}

static void
resp_send(struct http_request *req, int status, const char *ctype,
    bool nostore, const void *body, size_t len)
{
	struct http_conn *c = req->conn;
	struct http_server *srv = req->srv;
	char stack[2048];
	struct hbuf h = { stack, 0, sizeof(stack), false };
	const char *date, *text;
	size_t dlen, mark;
	bool keep, nobody;

	if (req->orphaned || c == NULL) {
		http__req_free(req);
		return;
	}
	if (c->state != HC_PENDING)
		return;		/* a second answer: ignored */
	if (status < 100 || status > 599)
		status = 500;
	keep = req->keepalive && !req->close_after && !c->peer_eof &&
	    !atomic_load(&srv->shutting_down);
	nobody = (status >= 100 && status < 200) || status == 204 || status == 304;

	text = http_status_text(status);
	HB_LIT(&h, "HTTP/1.1 ");
	hb_u64(&h, (uint64_t)status);
	HB_LIT(&h, " ");
	hb_add(&h, text, strlen(text));
	HB_LIT(&h, "\r\n");
	date = http_date_line(&dlen);
	hb_add(&h, date, dlen);
	if (!nobody) {
		HB_LIT(&h, "Content-Length: ");
		hb_u64(&h, len);
		HB_LIT(&h, "\r\n");
	}
	if (ctype != NULL && !nobody && value_ok(ctype) && strlen(ctype) < 256) {
		HB_LIT(&h, "Content-Type: ");
		hb_add(&h, ctype, strlen(ctype));
		HB_LIT(&h, "\r\n");
	}
	HB_LIT(&h, "X-Content-Type-Options: nosniff\r\n");
	if ((nostore || status >= 400) && !req->resp_cache_control)
		HB_LIT(&h, "Cache-Control: no-store\r\n");
	if (!keep)
		HB_LIT(&h, "Connection: close\r\n");
	else if (req->parser.http_minor == 0)
		HB_LIT(&h, "Connection: keep-alive\r\n");
	mark = h.len;
	hb_add(&h, req->resp_hdrs.data, req->resp_hdrs.len);
	HB_LIT(&h, "\r\n");
	if (nobody || req->is_head)
		len = 0;
	hb_add(&h, body, len);
	if (!h.over) {
		/* The usual case: one copy into the output. */
		(void)evbuffer_add(c->out, stack, h.len);
	} else {
		(void)evbuffer_add(c->out, stack, mark);
		if (req->resp_hdrs.len > 0)
			(void)evbuffer_add(c->out, req->resp_hdrs.data,
			    req->resp_hdrs.len);
		(void)evbuffer_add(c->out, "\r\n", 2);
		if (len > 0)
			(void)evbuffer_add(c->out, body, len);
	}
	log_access(req, status, len);
	observe(req, status);
	req_finish(c, keep);
}

void
http_respond(struct http_request *req, int status, const char *content_type,
    const void *body, size_t len)
{
	if (req == NULL)
		return;
	if (body == NULL)
		len = 0;
	resp_send(req, status, content_type, false, body, len);
}

void
http_respond_json(struct http_request *req, int status, const json_t *body)
{
	char stack[4096];
	char *heap = NULL, *out = stack;
	size_t n;

	if (req == NULL)
		return;
	n = body != NULL ? json_dumpb(body, stack, sizeof(stack), JSON_COMPACT) : 0;
	if (n > sizeof(stack)) {
		if ((heap = malloc(n)) != NULL &&
		    json_dumpb(body, heap, n, JSON_COMPACT) == n)
			out = heap;
		else
			n = 0;
	}
	if (n == 0) {
		http_respond_error(req, 500, "internal", "cannot encode response");
		free(heap);
		return;
	}
	resp_send(req, status, "application/json", true, out, n);
	free(heap);
}

void
http_respond_error(struct http_request *req, int status, const char *code,
    const char *message)
{
	static const char fallback[] =
	    "{\"error\":{\"code\":\"internal\",\"message\":\"error\"}}";
	json_t *j;
	char stack[1024];
	char *heap = NULL;
	const char *out = fallback;
	size_t n = sizeof(fallback) - 1, m;

	if (req == NULL)
		return;
	j = json_pack("{s:{s:s,s:s}}", "error", "code", code != NULL ? code : "error",
	    "message", message != NULL ? message : "");
	if (j != NULL) {
		m = json_dumpb(j, stack, sizeof(stack), JSON_COMPACT);
		if (m > 0 && m <= sizeof(stack)) {
			out = stack;
			n = m;
		} else if (m > sizeof(stack) && (heap = malloc(m)) != NULL &&
		    json_dumpb(j, heap, m, JSON_COMPACT) == m) {
			out = heap;
			n = m;
		}
		json_decref(j);
	}
	resp_send(req, status, "application/json", true, out, n);
	free(heap);
}

void
http__core_error(struct http_conn *c, int status, const char *code,
    const char *msg)
{
	struct http_request *req = c->req;
	bool was = c->in_dispatch;

	if (req->start_ns == 0)
		req->start_ns = http__now_ns();
	http__conn_arm(c, HTTP_TIMER_NONE);
	req->close_after = true;
	c->state = HC_PENDING;
	c->in_dispatch = true;
	http_respond_error(req, status, code, msg);
	c->in_dispatch = was;
}

struct bufferevent *
http_req_take_conn(struct http_request *req)
{
	struct http_conn *c;
	struct bufferevent *bev;

	if (req == NULL)
		return NULL;
	if (req->orphaned || (c = req->conn) == NULL) {
		http__req_free(req);
		return NULL;
	}
	if ((bev = c->bev) == NULL || c->state != HC_PENDING)
		return NULL;
	log_access(req, req->parser.method == HTTP_CONNECT ? 200 : 101, 0);
	observe(req, req->parser.method == HTTP_CONNECT ? 200 : 101);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	c->bev = NULL;
	c->fd = -1;
	c->taken = true;
	c->req = NULL;
	http__req_free(req);
	if (!c->in_dispatch)
		http__conn_free(c);
	return bev;
}

bool
http_req_keepalive(const struct http_request *req)
{
	const struct http_conn *c = req->conn;

	return c != NULL && !req->orphaned && req->keepalive &&
	    !req->close_after && !c->peer_eof &&
	    !atomic_load(&req->srv->shutting_down);
}

int
http_req_http_minor(const struct http_request *req)
{
	return req->parser.http_minor;
}

struct bufferevent *
http_req_lend_conn(struct http_request *req, int status,
    struct http_conn **conn)
{
	struct http_conn *c;
	struct bufferevent *bev;

	*conn = NULL;
	if (req == NULL)
		return NULL;
	if (req->orphaned || (c = req->conn) == NULL) {
		http__req_free(req);
		return NULL;
	}
	if ((bev = c->bev) == NULL || c->state != HC_PENDING || c->ctx == NULL)
		return NULL;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	bufferevent_disable(bev, EV_READ);
	c->bev = NULL;
	c->in = c->out = NULL;
	c->fd = -1;
	c->state = HC_LENT;
	c->lent_status = status;
	*conn = c;
	return bev;
}

void
http_conn_give_back(struct http_conn *c, struct bufferevent *bev, bool keep,
    uint64_t bytes)
{
	struct http_request *req;

	if (c == NULL || c->state != HC_LENT) {
		if (bev != NULL)
			bufferevent_free(bev);
		return;
	}
	req = c->req;
	log_access(req, c->lent_status, (size_t)bytes);
	observe(req, c->lent_status);
	if (bev == NULL) {
		http__conn_free(c);
		return;
	}
	keep = keep && http_req_keepalive(req);
	c->bev = bev;
	c->fd = bufferevent_getfd(bev);
	c->in = bufferevent_get_input(bev);
	c->out = bufferevent_get_output(bev);
	c->state = HC_PENDING;
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(bev, EV_READ, 0, HTTP_IN_HIGH);
	bufferevent_set_timeouts(bev, NULL, &c->ctx->tv_write);
	if (bufferevent_enable(bev, EV_READ | EV_WRITE) != 0) {
		http__conn_free(c);
		return;
	}
	req_finish(c, keep);
}

/* --- accessors --- */

int
http__set_client(struct http_request *req)
{
	const char *v = NULL, *s, *e;
	char tmp[HTTP_ADDR_MAX];
	struct sockaddr_storage ss;
	size_t n;

	req->client = req->conn_client;
	if (!req->xff_trusted)
		return 0;
	for (size_t i = 0; i < req->nhdrs; i++)
		if (strcasecmp(http__hdr_name(req, &req->hdrs[i]),
		    "x-forwarded-for") == 0)
			v = http__hdr_value(req, &req->hdrs[i]);
	if (v == NULL)
		return 0;
	/* The ingress appends the address it saw: the last entry. */
	s = strrchr(v, ',');
	s = s != NULL ? s + 1 : v;
	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	n = (size_t)(e - s);
	if (n == 0 || n >= sizeof(tmp))
		return MOAT_ERR_PARSE;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, tmp, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, tmp, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return MOAT_ERR_PARSE;
	addr_normalize(&ss);
	addr_format(&ss, req->xff_client, sizeof(req->xff_client));
	req->client = req->xff_client;
	return 0;
}

const char *
http_req_method(const struct http_request *req)
{
	return req->method != NULL ? req->method : "";
}

const char *
http_req_path(const struct http_request *req)
{
	return req->path != NULL ? req->path : "";
}

const char *
http_req_query(const struct http_request *req)
{
	return req->query != NULL ? req->query : "";
}

const char *
http_req_target(const struct http_request *req)
{
	return req->target != NULL ? req->target : "";
}

const char *
http_req_header(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->nhdrs; i++)
		if (strcasecmp(http__hdr_name(req, &req->hdrs[i]), name) == 0)
			return http__hdr_value(req, &req->hdrs[i]);
	return NULL;
}

bool
http_req_header_at(const struct http_request *req, size_t i,
    const char **name, const char **value)
{
	if (i >= req->nhdrs)
		return false;
	*name = http__hdr_name(req, &req->hdrs[i]);
	*value = http__hdr_value(req, &req->hdrs[i]);
	return true;
}

const char *
http_req_param(const struct http_request *req, const char *name)
{
	const struct http_endpoint *ep = req->ep;

	if (ep == NULL)
		return NULL;
	for (size_t i = 0; i < ep->nparams; i++)
		if (strcmp(ep->params[i], name) == 0)
			return req->params[i];
	return NULL;
}

const uint8_t *
http_req_body(const struct http_request *req, size_t *len)
{
	*len = req->body.len;
	return req->body.data != NULL ? req->body.data : (const uint8_t *)"";
}

const char *
http_req_client_addr(const struct http_request *req)
{
	return req->client;
}

const char *
http_req_peer_addr(const struct http_request *req)
{
	return req->peer;
}

const char *
http_req_tls_peer_name(const struct http_request *req)
{
	return req->has_tls_name ? req->tls_name : NULL;
}

struct event_base *
http_req_base(const struct http_request *req)
{
	return req->base;
}
