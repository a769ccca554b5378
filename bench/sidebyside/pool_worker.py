#!/usr/bin/python3
"""The bare redis-py + smtplib worker of bench/sidebyside: one process of
the pool. BRPOP a JSON job, send it with smtplib over one SMTP connection
kept open for the whole run, nothing else: no status, no retry, no
bookkeeping in Redis. Prints "ready" once both connections are up; on
SIGTERM finishes the message in hand, QUITs and prints how many it sent.

Usage: pool_worker.py REDIS_URL QUEUE SMTP_HOST SMTP_PORT
"""
import email.utils
import json
import signal
import smtplib
import sys

import redis

stop = False


def on_term(_sig, _frame):
    global stop
    stop = True


def main():
    url, queue, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    signal.signal(signal.SIGTERM, on_term)
    r = redis.Redis.from_url(url)
    r.ping()
    smtp = smtplib.SMTP(host, port, local_hostname="worker.example")
    smtp.ehlo()
    print("ready", flush=True)
    sent = 0
    while not stop:
        item = r.brpop(queue, timeout=1)
        if item is None:
            continue
        d = json.loads(item[1])
        # The headers a mail needs (what relayq and Nodemailer write too).
        msg = (f"From: {d['from']}\r\nTo: {d['to']}\r\nSubject: {d['subject']}\r\n"
               f"Date: {email.utils.formatdate()}\r\n"
               f"Message-ID: {email.utils.make_msgid(domain='platform.example')}\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 7bit\r\n\r\n" + d["text"].replace("\n", "\r\n"))
        smtp.sendmail(d["from"], [d["to"]], msg.encode())
        sent += 1
    smtp.quit()
    print(f"stopped: sent={sent}", flush=True)


if __name__ == "__main__":
    main()
