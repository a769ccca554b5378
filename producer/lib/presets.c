/*
 * presets: provider SMTP submission endpoints a tenant can name with
 * `smtp_preset` instead of typing host, port and security.
 *
 * Each row is the provider's documented message-submission endpoint:
 * port 587 with STARTTLS (RFC 6409, RFC 3207) where the provider documents
 * it, else port 465 with implicit TLS (RFC 8314). `source` is the page the
 * row was taken from; docs/presets.md shows the same table. A row is data,
 * not policy: explicit smtp_host/smtp_port/smtp_security override it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tenant.h"

#define SES_SOURCE "https://docs.aws.amazon.com/ses/latest/dg/smtp-connect.html"
/* SES has one SMTP endpoint per region; the region list is the SES
 * endpoints table of the AWS General Reference
 * (https://docs.aws.amazon.com/general/latest/gr/ses.html). */
#define SES(region)                                                            \
  { "ses-" region, "email-smtp." region ".amazonaws.com", 587,                 \
    RQ_SEC_STARTTLS, SES_SOURCE }

#define ISPDB "https://github.com/thunderbird/autoconfig/blob/master/ispdb/"

static const struct rq_preset presets[] = {
    /* Mailbox providers. */
    {"gmail", "smtp.gmail.com", 587, RQ_SEC_STARTTLS,
     "https://support.google.com/mail/answer/7126229"},
    {"office365", "smtp.office365.com", 587, RQ_SEC_STARTTLS,
     "https://learn.microsoft.com/en-us/exchange/mail-flow-best-practices/"
     "how-to-set-up-a-multifunction-device-or-application-to-send-email-"
     "using-microsoft-365-or-office-365"},
    {"yahoo", "smtp.mail.yahoo.com", 587, RQ_SEC_STARTTLS,
     "https://help.yahoo.com/kb/new-mail-for-desktop/"
     "imap-server-settings-yahoo-mail-sln4075.html"},
    {"zoho", "smtp.zoho.com", 587, RQ_SEC_STARTTLS,
     "https://www.zoho.com/mail/help/zoho-smtp.html"},
    {"ionos", "smtp.ionos.com", 587, RQ_SEC_STARTTLS, ISPDB "ionos.com"},
    {"ionos-it", "smtp.ionos.it", 587, RQ_SEC_STARTTLS, ISPDB "ionos.it"},
    {"ovh", "ssl0.ovh.net", 587, RQ_SEC_STARTTLS,
     "http://gids.ovh.nl/EmailSmtpPop3Imap"},
    /* Italian providers: these document implicit TLS on 465 only. */
    {"aruba", "smtps.aruba.it", 465, RQ_SEC_TLS,
     "https://guide.hosting.aruba.it/email/configurazione-email-pc-"
     "dispositivi-mobili/configurazione-casella-dominio-pc-mac-pop.aspx"},
    {"aruba-pec", "smtps.pec.aruba.it", 465, RQ_SEC_TLS,
     "https://guide.pec.it/posta-pec/configurare-casella-pec/bozza.aspx"},
    {"libero", "smtp.libero.it", 465, RQ_SEC_TLS, ISPDB "libero.it"},
    {"virgilio", "out.virgilio.it", 465, RQ_SEC_TLS, ISPDB "virgilio.it.xml"},
    {"tiscali", "smtp.tiscali.it", 465, RQ_SEC_TLS, ISPDB "tiscali.it.xml"},
    {"register", "authsmtp.securemail.pro", 465, RQ_SEC_TLS,
     "https://netfabric.freshdesk.com/support/solutions/articles/"
     "6000236440-problemi-invio-posta-italiano-"},
    /* Sending services. */
    {"sendgrid", "smtp.sendgrid.net", 587, RQ_SEC_STARTTLS,
     "https://www.twilio.com/docs/sendgrid/for-developers/sending-email/"
     "integrating-with-the-smtp-api"},
    {"mailgun", "smtp.mailgun.org", 587, RQ_SEC_STARTTLS,
     "https://documentation.mailgun.com/docs/mailgun/user-manual/"
     "smtp-protocol/"},
    {"mailgun-eu", "smtp.eu.mailgun.org", 587, RQ_SEC_STARTTLS,
     "https://cloud.google.com/compute/docs/tutorials/sending-mail/"
     "using-mailgun"},
    {"mandrill", "smtp.mandrillapp.com", 587, RQ_SEC_STARTTLS,
     "https://mailchimp.com/developer/transactional/docs/smtp-integration/"},
    /* Amazon SES, one per region. */
    SES("us-east-1"),      SES("us-east-2"),      SES("us-west-1"),
    SES("us-west-2"),      SES("ca-central-1"),   SES("sa-east-1"),
    SES("eu-west-1"),      SES("eu-west-2"),      SES("eu-west-3"),
    SES("eu-central-1"),   SES("eu-south-1"),     SES("eu-north-1"),
    SES("il-central-1"),   SES("me-south-1"),     SES("af-south-1"),
    SES("ap-south-1"),     SES("ap-south-2"),     SES("ap-southeast-1"),
    SES("ap-southeast-2"), SES("ap-southeast-3"), SES("ap-northeast-1"),
    SES("ap-northeast-2"), SES("ap-northeast-3"), SES("us-gov-west-1"),
};

/* Other names people use for the same endpoint. */
static const struct {
  const char *alias, *name;
} aliases[] = {
    {"google", "gmail"},          {"googlemail", "gmail"},
    {"google-workspace", "gmail"}, {"outlook", "office365"},
    {"microsoft365", "office365"}, {"m365", "office365"},
    {"o365", "office365"},        {"exchange-online", "office365"},
    {"ymail", "yahoo"},           {"zoho-mail", "zoho"},
    {"1and1", "ionos"},           {"aruba.it", "aruba"},
    {"pec-aruba", "aruba-pec"},   {"libero.it", "libero"},
    {"virgilio.it", "virgilio"},  {"tiscali.it", "tiscali"},
    {"register.it", "register"},  {"ovhcloud", "ovh"},
    {"twilio-sendgrid", "sendgrid"}, {"mailchimp", "mandrill"},
    {"mailchimp-transactional", "mandrill"},
    {"ses", "ses-us-east-1"},     {"amazon-ses", "ses-us-east-1"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct rq_preset *find_exact(const char *name) {
  for (size_t i = 0; i < COUNT(presets); i++)
    if (strcasecmp(presets[i].name, name) == 0) return &presets[i];
  return NULL;
}

const char *rq_preset_alias_target(const char *alias) {
  if (alias == NULL) return NULL;
  for (size_t i = 0; i < COUNT(aliases); i++)
    if (strcasecmp(aliases[i].alias, alias) == 0) return aliases[i].name;
  return NULL;
}

const struct rq_preset *rq_preset_find(const char *name) {
  if (name == NULL) return NULL;
  /* Longer than any name or alias: not ours, and keeps the copy below
   * bounded. */
  size_t len = strnlen(name, 64);
  if (len == 0 || len >= 64) return NULL;
  const struct rq_preset *p = find_exact(name);
  if (p != NULL) return p;
  const char *target = rq_preset_alias_target(name);
  if (target != NULL) return find_exact(target);
  /* "ses:eu-west-1" and "amazon-ses:eu-west-1" name "ses-eu-west-1". */
  const char *colon = strchr(name, ':');
  if (colon != NULL) {
    size_t head = (size_t)(colon - name);
    if ((head == 3 && strncasecmp(name, "ses", 3) == 0) ||
        (head == 10 && strncasecmp(name, "amazon-ses", 10) == 0)) {
      char buf[80];
      snprintf(buf, sizeof buf, "ses-%s", colon + 1);
      return find_exact(buf);
    }
  }
  return NULL;
}

const struct rq_preset *rq_presets(size_t *n) {
  if (n != NULL) *n = COUNT(presets);
  return presets;
}

/* OAuth2 endpoints and scopes for smtp_auth=xoauth2 (docs/oauth.md) and the
 * sending limits of one mailbox as rate_limits.
 *   gmail: 2,000 messages and 10,000 recipients a day per user, over a
 *     rolling 24 hours (Gmail sending limits in Google Workspace).
 *   office365: 30 messages a minute and 10,000 recipients a day
 *     (Exchange Online limits, "Sending limits").
 * Microsoft's /common/ endpoint serves delegated refreshes; app-only
 * (client_credentials) tokens need the directory's own endpoint. */
static const struct rq_preset_extra extras[] = {
    {"gmail", "https://oauth2.googleapis.com/token", "https://mail.google.com/", NULL,
     "2000/d,10000/d:rcpt", "https://support.google.com/a/answer/166852"},
    {"office365", "https://login.microsoftonline.com/common/oauth2/v2.0/token",
     "https://outlook.office.com/SMTP.Send offline_access", "https://outlook.office365.com/.default",
     "30/m,10000/d:rcpt",
     "https://learn.microsoft.com/en-us/office365/servicedescriptions/"
     "exchange-online-service-description/exchange-online-limits"},
};

const struct rq_preset_extra *rq_preset_extra(const char *canonical) {
  for (size_t i = 0; canonical && i < sizeof extras / sizeof extras[0]; i++)
    if (strcmp(extras[i].name, canonical) == 0) return &extras[i];
  return NULL;
}
