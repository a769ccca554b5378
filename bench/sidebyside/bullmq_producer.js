// The BullMQ producer of bench/sidebyside: adds N jobs of a 1 KB text
// mail with Queue.addBulk (one round trip per --batch jobs, the fastest
// way BullMQ has), then prints one JSON line: jobs, seconds, CPU seconds.
'use strict';
const { Queue } = require('bullmq');
const { args, redisOpts } = require('./common');
const fs = require('fs');

const o = args({ redis: 'redis://127.0.0.1:6379', queue: 'mail', n: 1000, batch: 1000, body: '',
  'remove-on-complete': 'true' });

async function main() {
  const text = fs.readFileSync(o.body, 'utf8');
  const q = new Queue(o.queue, { connection: redisOpts(o.redis) });
  await q.waitUntilReady();
  const remove = o['remove-on-complete'] === 'true';
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < o.n; i += o.batch) {
    const jobs = [];
    for (let j = i; j < Math.min(o.n, i + o.batch); j++) {
      jobs.push({ name: 'mail', data: {
        from: 'bench@platform.example', to: `user${j}.0@example.com`,
        subject: 'Your invoice from ACME (benchmark)', text,
      }, opts: { removeOnComplete: remove, removeOnFail: remove ? 1000 : false } });
    }
    await q.addBulk(jobs);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const u = process.cpuUsage();
  await q.close();
  console.log(JSON.stringify({ n: o.n, seconds: s, rate: o.n / s, cpu_s: (u.user + u.system) / 1e6 }));
}

main().catch((e) => { console.error(`bullmq_producer: ${e.stack || e}`); process.exit(1); });
