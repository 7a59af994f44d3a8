/* The writer's shared steps, for its files (response.c, wswrite.c): where
 * a host call's bytes go, and having the loop act on them. */
#ifndef PISTON_WRITER_H
#define PISTON_WRITER_H

#include "req.h"

typedef struct {
  piston_req *req;
  piston__conn *conn;
  piston__outq *q; /* the connection's queue (direct) or the post queue */
  bool direct;
} piston__wctx;

/* Locks req; PISTON_ECLOSED (unlocked) if the client is gone. */
int piston__wbegin(piston_req *req, piston__wctx *w);
/* Lock held: decides direct or posted. */
void piston__wplace(piston_req *req, piston__wctx *w);
/* Unlocks; returns rc, or 1 when the queue is over its high-water mark. */
int piston__wend(piston__wctx *w, unsigned flags, int rc);
/* Lock released: the loop acts now (direct) or from its inbox. */
void piston__wsubmit(piston__wctx *w, unsigned flags);
/* wswrite.c: queues a frame already built (a publish) to a session; 1 if it
 * was queued, 0 if the session is closing or over the publish limit. */
int piston__ws_queue_frame(piston_req *req, const void *frame, size_t len);
/* pubsub.c: drops every subscription of req (its session has ended). */
void piston__ws_unsubscribe_all(piston_req *req);

#endif
