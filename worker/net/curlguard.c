/* curlguard: the network boundary for libcurl transfers. See curlguard.h. */
#include "curlguard.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "log.h"
#include "netpolicy.h"

static void refuse(struct rq_curl_guard *g, const char *why) {
  if (g->refused) return;
  g->refused = 1;
  snprintf(g->why, sizeof g->why, "%s", why);
}

static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
  struct rq_curl_guard *g = clientp;
  (void)purpose;
  if (!g->refused) {
    const struct sockaddr *sa = &a->addr;
    int cls = rq_netpolicy_check_addr(g->policy, sa);
    if (cls == 0 && g->plain_http && !rq_netpolicy_allowed_net(g->policy, sa)) cls = -1;
    if (cls == 0) return socket(a->family, a->socktype, a->protocol);
    RQ_LOG_FIELDS(RQ_LOG_INFO, "network boundary: not connecting (HTTP)",
                  {"class", cls > 0 ? rq_net_class_name((enum rq_net_class)cls) : "public, over plain http"});
    if (cls > 0)
      refuse(g, "The URL's host resolves to addresses closed to tenants (loopback, private, link-local, reserved); "
                "nothing was connected. The operator may open a network: --allow-private-nets.");
    else
      refuse(g, "Plain http:// is only for networks the operator opened with --allow-private-nets: use https://. "
                "Nothing was connected.");
  }
  return CURL_SOCKET_BAD;
}

static void check_host(struct rq_curl_guard *g, const char *host) {
  char why[200], msg[240];
  if (rq_netpolicy_check_host(g->policy, host, why, sizeof why) != 0) {
    snprintf(msg, sizeof msg, "Not connecting: %s; nothing was connected.", why);
    refuse(g, msg);
  }
}

/* The URL's own checks: scheme and host as written. */
static void check_url(struct rq_curl_guard *g, const char *url) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL;
  if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
    refuse(g, "The URL cannot be checked against the network boundary.");
    goto out;
  }
  if (strcasecmp(scheme, "https") != 0) {
    if (strcasecmp(scheme, "http") != 0) refuse(g, "The URL must be https:// in --mode saas.");
    g->plain_http = 1; /* allowed only towards an opened network: open_socket decides */
  }
  check_host(g, host);
out:
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
}

static int install(CURL *e, struct rq_curl_guard *g) {
  if (curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, g) != CURLE_OK)
    return -1;
  return 0;
}

int rq_curl_guard_install(CURL *e, struct rq_curl_guard *g, const struct rq_netpolicy *policy, const char *url) {
  memset(g, 0, sizeof *g);
  if (!policy || !policy->enforce) return 0;
  g->policy = policy;
  check_url(g, url);
  return install(e, g);
}
