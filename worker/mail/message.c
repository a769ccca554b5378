/* message: a job's message, as the worker sends it (see message.h). */
#include "message.h"

#include "dkim.h"
#include "mime.h"
#include "msg.h"
#include "util.h"

int rq_message_signs(const struct rq_route *r, const struct rq_tenant *t) {
  return r->gateway == RQ_GW_PLATFORM && t != NULL && t->dkim_domain != NULL && t->dkim_selector != NULL &&
         t->dkim_private_key != NULL;
}

static int sign(const struct rq_message_input *in, struct rq_msg *m, char *err, size_t errlen) {
  if (!rq_message_signs(in->route, in->tenant)) return 0;
  void *key = NULL;
  if (in->dkim_key == NULL || in->dkim_key(in->dkim_arg, &key, err, errlen) != 0 || key == NULL) return -2;
  const struct rq_tenant *t = in->tenant;
  return rq_dkim_sign_msg(m, key, t->dkim_domain, t->dkim_selector, in->now_s, err, errlen) ? -2 : 0;
}

int rq_message_build(const struct rq_message_input *in, struct rq_msg *m, char *err, size_t errlen) {
  const struct relayq_job *j = in->job;
  if (j->raw) {
    /* The sender rule rewrites the raw From header, so the header block
     * passes through one temporary buffer before it becomes the message's
     * literal segment; the body stays in the payload (msg.h). */
    size_t head = rq_mime_raw_head(j->raw, j->raw_len);
    struct rq_buf raw;
    rq_buf_init(&raw);
    rq_mime_raw(j->raw, head, &raw);
    rq_route_raw_from(in->settings, in->tenant, j, in->route, &raw); /* sender rule, then DKIM */
    rq_msg_reset(m);
    rq_buf_append(&m->lit, raw.data, raw.len);
    rq_msg_add_crlf(m, j->raw + head, j->raw_len - head);
    rq_msg_finish(m);
    rq_buf_free(&raw);
    return sign(in, m, err, errlen);
  }
  struct rq_sender s;
  rq_route_sender(in->settings, in->tenant, j, in->route, &s);
  const struct rq_tenant *t = in->tenant;
  struct rq_mime_input mi = {
      .job = j,
      .from_addr = s.from_addr,
      .from_name = s.from_name,
      .reply_to = s.reply_to,
      .signature_text = t ? t->signature_text : NULL,
      .signature_html = t ? t->signature_html : NULL,
      .logo_url = t ? t->logo_url : NULL,
      .message_id = in->message_id,
      .date_ms = in->date_ms,
  };
  if (rq_mime_build_msg(&mi, m, err, errlen)) return -1;
  /* A signing failure is the tenant's settings (its key), not the job. */
  return sign(in, m, err, errlen);
}
