/* The response cache's hooks in the writer (response.c): the capture of a
 * response that fills a miss (req->cache_lead). All run under the request's
 * lock. Owned by cachecap.c. */
#ifndef PISTON_CACHECAP_H
#define PISTON_CACHECAP_H

#include "writer.h"

/* The engine's own field (Piston-Cache): never sent. */
bool piston__cache_field_is_ours(piston_str name);
/* The response starts (framing decided: keep, its Content-Length or -1).
 * Returns 1 when a stale response went out in its place (a 5xx within
 * stale-if-error): the host's head and body are then dropped. */
int piston__cache_capture_start(piston__wctx *w, int status,
                                const piston_str *reason,
                                const piston_header *h, size_t nh, bool keep,
                                int64_t content_length);
void piston__cache_capture_body(piston_req *r, const void *data, size_t len);
/* The body goes a way the capture cannot follow (a file) */
void piston__cache_capture_fail(piston_req *r);
/* The response ended (whole: its framing complete, no trailers): store it
 * or not; the requests that waited on it are left in req->cache_woken for
 * piston__cache_wake once the request's lock is released. */
void piston__cache_capture_end(piston_req *r, bool whole);

#endif
