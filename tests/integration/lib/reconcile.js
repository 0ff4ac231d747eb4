'use strict';
/*
 * What local apps were told against what a subscriber on the platform got:
 * the bookkeeping of the fault suite (faults.test.js).
 *
 * Each app emits {"app":A,"n":k} for k = 0, 1, 2, ... (dsipc-load steady)
 * and reports at the end which numbers it emitted and which of them were
 * not accepted ("notAccepted" ranges; everything else was answered "sent"
 * or "queued"). The subscriber hands every event it gets to record(). Then:
 *   lost        accepted, never received
 *   duplicated  deliveries beyond the first of one number (a number
 *               received three times counts 2)
 *   reordered   a first delivery of a number lower than one already
 *               received from the same app
 *   extra       received, but never accepted (the answer was lost with
 *               the connection to dsd, yet the emit went through): allowed
 *   stray       events that are not {"app":A,"n":k} of a known app
 *   received    every delivery, duplicates and extras included, so
 *               received = sent - lost + duplicated + extra + stray
 */

function reconciler() {
  const apps = new Map(); // app -> {times: Map n -> deliveries, max, reordered}
  let deliveries = 0;
  let stray = 0;
  let lastAt = 0;

  function app(a) {
    let x = apps.get(a);
    if (!x) {
      x = { times: new Map(), max: -1, reordered: 0, reorders: [], deliveries: 0 };
      apps.set(a, x);
    }
    return x;
  }

  function record(data) {
    deliveries += 1;
    lastAt = Date.now();
    if (!data || !Number.isInteger(data.app) || !Number.isInteger(data.n) || data.n < 0) {
      stray += 1;
      return;
    }
    const x = app(data.app);
    x.deliveries += 1;
    const seen = x.times.get(data.n) || 0;
    x.times.set(data.n, seen + 1);
    if (seen === 0 && data.n < x.max) {
      x.reordered += 1;
      // The first few, as "n after max", for the report.
      if (x.reorders.length < 10) x.reorders.push(`${data.n} after ${x.max}`);
    }
    if (data.n > x.max) x.max = data.n;
  }

  // Whether number n of app a was accepted, given its report.
  function acceptedIn(report) {
    const ranges = report.notAccepted; // sorted, disjoint [a, b]
    return (n) => {
      let lo = 0;
      let hi = ranges.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const [a, b] = ranges[mid];
        if (n < a) hi = mid - 1;
        else if (n > b) lo = mid + 1;
        else return false;
      }
      return n >= 0 && n < report.emitted;
    };
  }

  /*
   * reports: the apps' result lines. Returns the totals, per app figures,
   * and the lost numbers ({app, n}, in order) for the caller to attribute.
   */
  function settle(reports) {
    const total = { sent: 0, received: deliveries, lost: 0, duplicated: 0, reordered: 0, extra: 0, stray };
    const perApp = [];
    const lostList = [];
    const known = new Set(reports.map((r) => r.app));
    for (const [a, x] of apps) {
      if (!known.has(a)) total.stray += x.deliveries;
    }
    for (const r of reports) {
      const x = app(r.app);
      const accepted = acceptedIn(r);
      const fig = { app: r.app, emitted: r.emitted, sent: 0, received: x.deliveries, lost: 0,
        duplicated: 0, reordered: x.reordered, extra: 0, stray: 0, reorders: x.reorders };
      for (let n = 0; n < r.emitted; n++) {
        if (!accepted(n)) continue;
        fig.sent += 1;
        if (!x.times.has(n)) {
          fig.lost += 1;
          lostList.push({ app: r.app, n });
        }
      }
      for (const [n, k] of x.times) {
        fig.duplicated += k - 1;
        if (!accepted(n)) {
          if (n < r.emitted) fig.extra += 1;
          else fig.stray += k;
        }
      }
      perApp.push(fig);
      for (const key of ['sent', 'lost', 'duplicated', 'reordered', 'extra', 'stray']) total[key] += fig[key];
    }
    return { total, perApp, lostList };
  }

  return {
    record,
    settle,
    get deliveries() {
      return deliveries;
    },
    get lastAt() {
      return lastAt;
    },
    // The highest number received from app a so far (-1: none).
    maxOf(a) {
      return apps.has(a) ? apps.get(a).max : -1;
    },
  };
}

// [[a, b], ...] for a sorted list of integers, at most `max` ranges.
function ranges(ns, max = 20) {
  const out = [];
  for (const n of ns) {
    const last = out[out.length - 1];
    if (last && last[1] === n - 1) last[1] = n;
    else out.push([n, n]);
  }
  const shown = out.slice(0, max).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
  if (out.length > max) shown.push(`... (${out.length - max} more ranges)`);
  return shown.join(' ');
}

module.exports = { reconciler, ranges };
