/*
 * mailgun: the Mailgun HTTP API transport (POST /v3/DOMAIN/messages.mime,
 * basic auth api:KEY) on the worker's curl multi handle.
 */
#ifndef RQ_MAILGUN_H
#define RQ_MAILGUN_H

#include <stddef.h>

#include "smtp.h"

struct rq_curl;
struct rq_jobctx;
struct rq_mailgun;

struct rq_mailgun *rq_mailgun_new(struct rq_curl *curl);
void rq_mailgun_free(struct rq_mailgun *m);

/* Sends jc->msg to rcpts through jc->route's Mailgun account; cb gets a
 * result shaped like an SMTP transaction's. Returns 0 (cb runs once) or <0
 * (cb never runs). */
int rq_mailgun_send_for_job(struct rq_jobctx *jc, const char *const *rcpts, size_t n, rq_smtp_cb cb);

#endif
