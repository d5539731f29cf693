/*
 * http_route.c - routing table of the HTTP core (see http.h, http_int.h).
 *
 * Patterns are kept in a trie of path segments. A lookup walks it depth
 * first, trying at each level the literal child, then the "{param}" child,
 * then a final "*" segment, so the most specific pattern wins and the first
 * complete match is the answer; backtracking only happens among the few
 * registered patterns. The request path is checked on the way: malformed
 * percent escapes, an escaped NUL, and "." or ".." segments (also when
 * escaped) are refused with 400, as is an escaped '/' inside a parameter.
 * The pattern "*" (alone) receives targets that are not in origin form:
 * CONNECT's authority form and absolute URLs (forward proxies).
 */
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "uri.h"

static bool
route_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
route_method_ok(const char *m)
{
	if (strcmp(m, "*") == 0)
		return true;
	if (*m == '\0')
		return false;
	for (; *m != '\0'; m++)
		if (!route_tchar((unsigned char)*m))
			return false;
	return true;
}

static bool
route_param_name_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static void
route_ep_free(struct http_endpoint *ep)
{
	if (ep == NULL)
		return;
	free(ep->method);
	free(ep->pattern);
	for (size_t i = 0; i < ep->nparams; i++)
		free(ep->params[i]);
	free(ep);
}

static void
route_eps_free(struct http_endpoint *ep)
{
	while (ep != NULL) {
		struct http_endpoint *next = ep->next;

		route_ep_free(ep);
		ep = next;
	}
}

static void
route_node_free_children(struct http_rnode *n)
{
	struct http_rnode *c, *next;

	for (c = n->exact; c != NULL; c = next) {
		next = c->next;
		route_node_free_children(c);
		free(c->seg);
		free(c);
	}
	if (n->param != NULL) {
		route_node_free_children(n->param);
		free(n->param);
	}
	route_eps_free(n->eps);
	route_eps_free(n->wild);
	n->exact = n->param = NULL;
	n->eps = n->wild = NULL;
}

void
http__route_free(struct http_server *srv)
{
	route_node_free_children(&srv->root);
	route_eps_free(srv->any_target);
	srv->any_target = NULL;
}

/* Adds ep to *list unless the method is there already. */
static int
route_list_add(struct http_endpoint **list, struct http_endpoint *ep)
{
	struct http_endpoint **pp;

	for (pp = list; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->method, ep->method) == 0)
			return MOAT_ERR_EXISTS;
	*pp = ep;
	return 0;
}

int
http__route_add(struct http_server *srv, const char *method,
    const char *pattern, http_handler_fn fn, void *arg)
{
	struct http_endpoint *ep = NULL;
	struct http_rnode *node = &srv->root, *c;
	struct http_endpoint **list = NULL;
	const char *p, *q;
	int r = MOAT_ERR_INVAL;

	if (method == NULL || pattern == NULL || fn == NULL ||
	    !route_method_ok(method))
		goto out;
	r = MOAT_ERR_NOMEM;
	if ((ep = calloc(1, sizeof(*ep))) == NULL ||
	    (ep->method = strdup(method)) == NULL ||
	    (ep->pattern = strdup(pattern)) == NULL)
		goto out;
	ep->fn = fn;
	ep->arg = arg;

	if (strcmp(pattern, "*") == 0) {
		list = &srv->any_target;
		goto add;
	}
	r = MOAT_ERR_INVAL;
	if (pattern[0] != '/')
		goto out;
	for (p = pattern + 1;; p = q + 1) {
		size_t n;

		r = MOAT_ERR_INVAL;
		q = strchr(p, '/');
		n = q != NULL ? (size_t)(q - p) : strlen(p);
		if (n == 1 && p[0] == '*') {
			if (q != NULL)
				goto out;	/* "*" only as the last segment */
			list = &node->wild;
			break;
		}
		if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
			r = MOAT_ERR_INVAL;
			if (!route_param_name_ok(p + 1, n - 2) ||
			    ep->nparams == HTTP_MAX_PARAMS)
				goto out;
			r = MOAT_ERR_NOMEM;
			if ((ep->params[ep->nparams] = strndup(p + 1, n - 2)) == NULL)
				goto out;
			ep->nparams++;
			if (node->param == NULL &&
			    (node->param = calloc(1, sizeof(*node->param))) == NULL)
				goto out;
			node = node->param;
		} else {
			r = MOAT_ERR_INVAL;
			if (memchr(p, '{', n) != NULL || memchr(p, '}', n) != NULL ||
			    memchr(p, '*', n) != NULL || memchr(p, '%', n) != NULL)
				goto out;
			for (c = node->exact; c != NULL; c = c->next)
				if (c->seg_len == n && memcmp(c->seg, p, n) == 0)
					break;
			if (c == NULL) {
				r = MOAT_ERR_NOMEM;
				if ((c = calloc(1, sizeof(*c))) == NULL)
					goto out;
				if ((c->seg = strndup(p, n)) == NULL) {
					free(c);
					goto out;
				}
				c->seg_len = n;
				c->next = node->exact;
				node->exact = c;
			}
			node = c;
		}
		if (q == NULL) {
			list = &node->eps;
			break;
		}
	}
add:
	if ((r = route_list_add(list, ep)) != 0)
		goto out;
	ep = NULL;
	r = 0;
out:
	/* Nodes created on the way stay; they are harmless without
	 * endpoints and freed with the server. */
	route_ep_free(ep);
	return r;
}

/* The endpoint of list that serves method: the exact method, then "*";
 * HEAD falls back to GET. */
static const struct http_endpoint *
route_pick(const struct http_endpoint *list, const char *method, bool is_head)
{
	const struct http_endpoint *ep, *star = NULL, *get = NULL;

	for (ep = list; ep != NULL; ep = ep->next) {
		if (strcmp(ep->method, method) == 0)
			return ep;
		if (ep->method[0] == '*')
			star = ep;
		else if (is_head && strcmp(ep->method, "GET") == 0)
			get = ep;
	}
	return get != NULL ? get : star;
}

/* A request path cut into segments (offsets into the path). */
struct route_segs {
	uint32_t off[HTTP_MAX_SEGMENTS], len[HTTP_MAX_SEGMENTS];
	size_t n;
};

struct route_walk {
	const struct http_request *req;
	const struct route_segs *segs;
	const char *path;
	bool is_head;
	bool path_hit;		/* some pattern matched the path */
	struct buf *allow;	/* collecting methods for 405, or NULL */
	const struct http_endpoint *ep;
	size_t nparams;
	size_t pseg[HTTP_MAX_PARAMS];
};

/* For 405: appends the methods of list not yet in w->allow. */
static void
route_collect(struct route_walk *w, const struct http_endpoint *list)
{
	for (const struct http_endpoint *ep = list; ep != NULL; ep = ep->next) {
		const char *have = buf_cstr(w->allow);
		size_t n = strlen(ep->method);
		bool dup = false;

		for (const char *s = have; (s = strstr(s, ep->method)) != NULL; s += n)
			if ((s == have || s[-1] == ' ') &&
			    (s[n] == ',' || s[n] == '\0'))
				dup = true;
		if (dup)
			continue;
		if (w->allow->len > 0 && buf_append_str(w->allow, ", ") != 0)
			return;
		if (buf_append_str(w->allow, ep->method) != 0)
			return;
	}
}

static bool
route_try(struct route_walk *w, const struct http_endpoint *list)
{
	if (list == NULL)
		return false;
	w->path_hit = true;
	if (w->allow != NULL) {
		route_collect(w, list);
		return false;
	}
	w->ep = route_pick(list, w->req->method, w->is_head);
	return w->ep != NULL;
}

static bool
route_walk(struct route_walk *w, const struct http_rnode *n, size_t i)
{
	const char *seg;
	size_t len;

	if (i == w->segs->n)
		return route_try(w, n->eps);
	seg = w->path + w->segs->off[i];
	len = w->segs->len[i];
	for (const struct http_rnode *c = n->exact; c != NULL; c = c->next) {
		if (c->seg_len == len && memcmp(c->seg, seg, len) == 0) {
			if (route_walk(w, c, i + 1))
				return true;
			break;
		}
	}
	if (n->param != NULL && len > 0 && w->nparams < HTTP_MAX_PARAMS) {
		w->pseg[w->nparams++] = i;
		if (route_walk(w, n->param, i + 1))
			return true;
		w->nparams--;
	}
	return route_try(w, n->wild);
}

/* Checks one raw segment: escapes well formed, no escaped NUL, not a dot
 * segment (plain or escaped). */
static bool
route_seg_ok(const char *s, size_t n)
{
	char dec[3];
	size_t dn = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (ch == '%') {
			int hi, lo;

			if (n - i < 3 || (hi = uri_hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = uri_hexval((unsigned char)s[i + 2])) < 0)
				return false;
			ch = (char)(hi << 4 | lo);
			if (ch == '\0')
				return false;
			i += 2;
		}
		if (dn < sizeof(dec))
			dec[dn] = ch;
		dn++;
	}
	if (dn == 1 && dec[0] == '.')
		return false;
	if (dn == 2 && dec[0] == '.' && dec[1] == '.')
		return false;
	return true;
}

/* Appends the decoded segment and a NUL to b; MOAT_ERR_PARSE when it
 * decodes to a '/'. The segment was checked by route_seg_ok. */
static int
route_decode(struct buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (ch == '%') {
			ch = (char)(uri_hexval((unsigned char)s[i + 1]) << 4 |
			    uri_hexval((unsigned char)s[i + 2]));
			i += 2;
			if (ch == '/')
				return MOAT_ERR_PARSE;
		}
		if (buf_append(b, &ch, 1) != 0)
			return MOAT_ERR_NOMEM;
	}
	return buf_append(b, "", 1);
}

/* Splits path (path_len bytes, starting with '/') into segments, checking
 * each. Returns 0 or 400. */
static int
route_split(struct route_segs *sg, const char *path, size_t path_len)
{
	size_t start = 1;

	sg->n = 0;
	for (size_t i = 1; i <= path_len; i++) {
		if (i < path_len && path[i] != '/')
			continue;
		if (sg->n == HTTP_MAX_SEGMENTS)
			return 400;
		if (!route_seg_ok(path + start, i - start))
			return 400;
		sg->off[sg->n] = (uint32_t)start;
		sg->len[sg->n] = (uint32_t)(i - start);
		sg->n++;
		start = i + 1;
	}
	return 0;
}

int
http__route_match(struct http_server *srv, struct http_request *req,
    size_t path_len)
{
	struct route_walk w;
	struct route_segs sg;
	size_t path_off = 0, poff[HTTP_MAX_PARAMS];
	const char *path;
	int r;

	req->ep = NULL;
	req->route_status = 0;
	memset(&w, 0, sizeof(w));
	w.req = req;
	w.is_head = req->is_head;
	w.segs = &sg;
	sg.n = 0;

	if (path_len == 0) {
		/* CONNECT authority form, absolute form, "*". */
		req->path = "";
		if (srv->any_target == NULL)
			return 400;
		if (!route_try(&w, srv->any_target))
			req->route_status = 405;
		req->ep = w.ep;
		return 0;
	}

	path = req->target;
	if ((r = route_split(&sg, path, path_len)) != 0)
		return r;
	w.path = path;
	if (!route_walk(&w, &srv->root, 0)) {
		req->route_status = w.path_hit ? 405 : 404;
		req->path = path;
		if (path[path_len] != '\0') {
			if (buf_append(&req->strs, path, path_len) != 0 ||
			    buf_append(&req->strs, "", 1) != 0)
				return 500;
			req->path = (const char *)req->strs.data;
		}
		return 0;
	}

	/* strs holds [path NUL] when a query follows, then the decoded
	 * parameters; pointers are taken once nothing moves any more. */
	if (path[path_len] != '\0') {
		if (buf_append(&req->strs, path, path_len) != 0 ||
		    buf_append(&req->strs, "", 1) != 0)
			return 500;
		path_off = 1;
	}
	for (size_t i = 0; i < w.nparams; i++) {
		size_t s = w.pseg[i];

		poff[i] = req->strs.len;
		r = route_decode(&req->strs, path + sg.off[s], sg.len[s]);
		if (r == MOAT_ERR_PARSE)
			return 400;
		if (r != 0)
			return 500;
	}
	req->path = path_off ? (const char *)req->strs.data : path;
	for (size_t i = 0; i < w.nparams; i++)
		req->params[i] = (const char *)req->strs.data + poff[i];
	req->ep = w.ep;
	return 0;
}

int
http__route_allow(struct http_server *srv, struct http_request *req)
{
	struct route_walk w;
	struct route_segs sg;
	struct buf allow;
	int r = MOAT_ERR_NOMEM;

	buf_init(&allow, 1024);
	memset(&w, 0, sizeof(w));
	w.req = req;
	w.allow = &allow;
	w.path = req->path;
	w.segs = &sg;
	if (req->path[0] == '\0')
		(void)route_try(&w, srv->any_target);
	else if (route_split(&sg, req->path, strlen(req->path)) == 0)
		(void)route_walk(&w, &srv->root, 0);
	if (allow.len > 0 &&
	    (buf_append_str(&req->resp_hdrs, "Allow: ") != 0 ||
	    buf_append(&req->resp_hdrs, allow.data, allow.len) != 0 ||
	    buf_append_str(&req->resp_hdrs, "\r\n") != 0))
		goto out;
	r = 0;
out:
	buf_free(&allow);
	return r;
}
