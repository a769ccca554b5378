/*
 * settings: the worker's configuration (config.h) turned into what each
 * part takes as parameters, so the parts below never see struct
 * rq_config: the route settings of the mail core (route.h) and the SMTP
 * transport's target (smtp.h). The daemon and the CLI's server-talking
 * commands both go through here, so they route and connect alike.
 *
 * Ownership: what these functions fill borrows strings from cfg and the
 * route; it is valid while they are.
 */
#ifndef RQ_SETTINGS_H
#define RQ_SETTINGS_H

#include <stddef.h>

#include "config.h"
#include "route.h"
#include "smtp.h"

/* Fills s from cfg, parsing --platform-smtp (smtp:// or smtps://, with
 * curl's URL parser). Returns 0, or -1 with a sentence in err. */
int rq_settings_route(const struct rq_config *cfg, struct rq_route_settings *s, char *err, size_t errlen);

/* The transport target for SMTP route r: its server, login and limits,
 * with cfg's CA file and timeouts. */
void rq_settings_smtp_target(const struct rq_config *cfg, const struct rq_route *r, struct rq_smtp_target *t);

#endif
