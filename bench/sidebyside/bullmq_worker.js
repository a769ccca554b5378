// The BullMQ + Nodemailer worker of bench/sidebyside: one BullMQ Worker
// with --concurrency jobs at a time, each sent by one pooled Nodemailer
// transport (--connections SMTP connections, kept open, no limit on
// messages per connection). Prints "ready" once it listens for jobs, and
// on SIGTERM closes and prints how many it sent.
'use strict';
const { Worker } = require('bullmq');
const nodemailer = require('nodemailer');
const { args, redisOpts } = require('./common');

const o = args({ redis: 'redis://127.0.0.1:6379', queue: 'mail', smtp: 'smtp://127.0.0.1:25',
  concurrency: 100, connections: 16 });

const smtp = new URL(o.smtp);
const transport = nodemailer.createTransport({
  host: smtp.hostname, port: Number(smtp.port), secure: false, ignoreTLS: true,
  pool: true, maxConnections: o.connections, maxMessages: Infinity,
});

let sent = 0;
const worker = new Worker(o.queue, async (job) => {
  const d = job.data;
  await transport.sendMail({ from: d.from, to: d.to, subject: d.subject, text: d.text });
  sent++;
}, { connection: redisOpts(o.redis), concurrency: o.concurrency, autorun: false });

worker.on('failed', (job, err) => console.error(`failed ${job && job.id}: ${err.message}`));

async function stop() {
  await worker.close();
  transport.close();
  console.log(`stopped: sent=${sent}`);
  process.exit(0);
}
process.on('SIGTERM', () => { stop().catch(() => process.exit(1)); });

worker.waitUntilReady().then(() => {
  console.log('ready');
  worker.run().catch((e) => { console.error(`bullmq_worker: ${e.stack || e}`); process.exit(1); });
}).catch((e) => { console.error(`bullmq_worker: ${e.stack || e}`); process.exit(1); });
