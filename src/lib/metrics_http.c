/*
 * metrics_http.c - the Prometheus /metrics route handler (metrics.h),
 * apart from metrics.c so that the metrics core does not depend on http.c.
 */
#include "buf.h"
#include "http.h"
#include "metrics.h"

void
metrics_http_handler(struct http_request *req, void *metrics)
{
	struct buf out;

	buf_init(&out, 4 * 1024 * 1024);
	if (metrics_render(metrics, &out) != 0) {
		http_respond_error(req, 500, "internal", "metrics unavailable");
	} else {
		http_respond(req, 200, "text/plain; version=0.0.4", out.data,
		    out.len);
	}
	buf_free(&out);
}
