// Shared by the BullMQ producer and worker of bench/sidebyside: the
// command line (--name value pairs) and the 1 KB text body every
// competitor sends (the same bytes as bench/enqueue.c's small profile).
'use strict';

function args(defaults) {
  const out = { ...defaults };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i].replace(/^--/, '');
    if (!(k in defaults) || i + 1 >= a.length) {
      console.error(`unknown option or missing value: ${a[i]}`);
      process.exit(2);
    }
    out[k] = typeof defaults[k] === 'number' ? Number(a[i + 1]) : a[i + 1];
  }
  return out;
}

function redisOpts(url) {
  const u = new URL(url);
  // maxRetriesPerRequest null: BullMQ's workers need it (blocking commands).
  return { host: u.hostname, port: Number(u.port), maxRetriesPerRequest: null };
}

module.exports = { args, redisOpts };
